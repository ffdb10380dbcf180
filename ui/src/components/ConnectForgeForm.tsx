// #connect-forge: the form that connects a forge, or edits a saved one (used by Settings and by
// onboarding, never both at once). Test sends test_forge (nothing stored); Save sends save_forge, which stores
// the secrets (token, webhook secret) in the OS keychain through the daemon. They are cleared once saved.
import { useState } from 'preact/hooks';
import { saveForge, testForge, type ForgeKind, type SavedForge, type TestResult, type UiError } from '../api';
import {
  EMPTY_FIELDS,
  KIND_ORDER,
  KINDS,
  toForgeInput,
  validate,
  webhookPath,
  type FieldErrors,
  type ForgeFields,
} from '../forgeForm';
import { ErrorMessage } from './ErrorMessage';
import { Field } from './Field';

type Outcome<T> = { ok: true; value: T } | { ok: false; error: UiError } | null;

interface Props {
  onSaved?: (saved: SavedForge) => void;
  /** Editing a saved forge: its fields (kind and owner fixed; an empty token keeps the stored one). */
  initial?: ForgeFields;
  /** With `initial`: leaves the edit. */
  onCancel?: () => void;
}

export function ConnectForgeForm({ onSaved, initial, onCancel }: Props) {
  const editing = initial !== undefined;
  // An edited token forge keeps its stored token when the field is left empty (not one that used an App).
  const keepsToken = editing && initial.authType === 'token';
  const [f, setF] = useState<ForgeFields>(initial ?? EMPTY_FIELDS);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState<'test' | 'save' | null>(null);
  const [tested, setTested] = useState<Outcome<TestResult>>(null);
  const [saved, setSaved] = useState<Outcome<SavedForge>>(null);

  const info = KINDS[f.kind];
  const useApp = info.hasApp && f.authType === 'app';

  function set<K extends keyof ForgeFields>(key: K, value: ForgeFields[K]) {
    setF((prev) => ({ ...prev, [key]: value }));
    setErrors((prev) => ({ ...prev, [key]: undefined }));
  }

  /** Validates; on success returns the input to send. */
  function checked() {
    const found = validate(f, keepsToken);
    setErrors(found);
    return Object.keys(found).length === 0 ? toForgeInput(f) : null;
  }

  async function test() {
    const input = checked();
    if (!input) return;
    setBusy('test');
    setTested(null);
    try {
      setTested({ ok: true, value: await testForge(input) });
    } catch (e) {
      setTested({ ok: false, error: e as UiError });
    } finally {
      setBusy(null);
    }
  }

  async function save(e: Event) {
    e.preventDefault();
    const input = checked();
    if (!input) return;
    setBusy('save');
    setSaved(null);
    try {
      const result = await saveForge(input);
      setSaved({ ok: true, value: result });
      setF((prev) => ({ ...prev, token: '', webhookSecret: '' }));
      onSaved?.(result);
    } catch (err) {
      setSaved({ ok: false, error: err as UiError });
    } finally {
      setBusy(null);
    }
  }

  return (
    <form id="connect-forge" class="form" data-editing={editing ? f.owner : undefined} onSubmit={save} noValidate>
      <Field label="Forge" htmlFor="forge-kind">
        <select
          id="forge-kind"
          value={f.kind}
          disabled={editing}
          onChange={(e) => set('kind', e.currentTarget.value as ForgeKind)}
        >
          {KIND_ORDER.map((k) => (
            <option key={k} value={k}>
              {KINDS[k].label}
            </option>
          ))}
        </select>
      </Field>

      <Field label={info.urlLabel} htmlFor="forge-url" error={errors.url}>
        <input
          id="forge-url"
          type="url"
          placeholder={info.urlPlaceholder}
          value={f.url}
          onInput={(e) => set('url', e.currentTarget.value)}
        />
      </Field>

      {info.hasOwner && (
        <>
          <Field label="Owner (user or organization)" htmlFor="forge-owner" error={errors.owner}>
            <input
              id="forge-owner"
              type="text"
              autoComplete="off"
              spellcheck={false}
              value={f.owner}
              readOnly={editing}
              onInput={(e) => set('owner', e.currentTarget.value)}
            />
          </Field>
          <Field
            label="Repositories"
            htmlFor="forge-repos"
            hint="Comma-separated. Leave empty to serve the whole organization."
          >
            <input
              id="forge-repos"
              type="text"
              autoComplete="off"
              spellcheck={false}
              placeholder="whole organization"
              value={f.repos}
              onInput={(e) => set('repos', e.currentTarget.value)}
            />
          </Field>
        </>
      )}

      {info.hasApp && (
        <fieldset class="choice">
          <legend>Sign in with</legend>
          <label class="check">
            <input
              type="radio"
              id="auth-token"
              name="forge-auth"
              checked={f.authType === 'token'}
              onChange={() => set('authType', 'token')}
            />
            A personal access token
          </label>
          <label class="check">
            <input
              type="radio"
              id="auth-app"
              name="forge-auth"
              checked={f.authType === 'app'}
              onChange={() => set('authType', 'app')}
            />
            A GitHub App
          </label>
        </fieldset>
      )}

      {useApp ? (
        <>
          <Field label="App ID" htmlFor="forge-app-id" error={errors.appId}>
            <input
              id="forge-app-id"
              type="text"
              inputMode="numeric"
              value={f.appId}
              onInput={(e) => set('appId', e.currentTarget.value)}
            />
          </Field>
          <Field label="Installation ID" htmlFor="forge-installation-id" error={errors.installationId}>
            <input
              id="forge-installation-id"
              type="text"
              inputMode="numeric"
              value={f.installationId}
              onInput={(e) => set('installationId', e.currentTarget.value)}
            />
          </Field>
          <Field
            label="Private key file"
            htmlFor="forge-key-file"
            error={errors.keyFile}
            hint="The path of the App's .pem file on this computer; the daemon reads it."
          >
            <input
              id="forge-key-file"
              type="text"
              spellcheck={false}
              placeholder="/path/to/app.private-key.pem"
              value={f.keyFile}
              onInput={(e) => set('keyFile', e.currentTarget.value)}
            />
          </Field>
        </>
      ) : (
        <Field
          label={info.secretLabel}
          htmlFor="forge-token"
          error={errors.token}
          hint={keepsToken ? 'Leave empty to keep the stored one.' : info.secretHint}
        >
          <input
            id="forge-token"
            type="password"
            autoComplete="off"
            spellcheck={false}
            placeholder={keepsToken ? 'stored' : undefined}
            value={f.token}
            onInput={(e) => set('token', e.currentTarget.value)}
          />
        </Field>
      )}

      <fieldset class="choice">
        <legend>Finding new jobs</legend>
        <Field label="Poll every" htmlFor="forge-poll" error={errors.poll} hint="e.g. 10s or 1m; empty: the default.">
          <input id="forge-poll" type="text" class="short" value={f.poll} onInput={(e) => set('poll', e.currentTarget.value)} />
        </Field>
        <label class="check">
          <input
            id="forge-webhook"
            type="checkbox"
            checked={f.webhook}
            onChange={(e) => set('webhook', e.currentTarget.checked)}
          />
          Also take webhooks from the forge (jobs start sooner)
        </label>
        {f.webhook && (
          <Field
            label="Webhook secret"
            htmlFor="forge-webhook-secret"
            error={errors.webhookSecret}
            hint={`The secret of the forge's webhook (event "Workflow jobs", content type application/json), sent to ${webhookPath(f)} at the webhook address in Jobs below, through a tunnel or reverse proxy. Stored in the keychain; empty keeps the one stored before.`}
          >
            <input
              id="forge-webhook-secret"
              type="password"
              autoComplete="off"
              spellcheck={false}
              value={f.webhookSecret}
              onInput={(e) => set('webhookSecret', e.currentTarget.value)}
            />
          </Field>
        )}
      </fieldset>

      <fieldset class="choice">
        <legend>Its jobs</legend>
        <Field
          label="Extra labels"
          htmlFor="forge-labels"
          error={errors.labels}
          hint="Comma-separated, besides self-hosted, the OS and the architecture: jobs whose runs-on asks for them come here."
        >
          <input
            id="forge-labels"
            type="text"
            autoComplete="off"
            spellcheck={false}
            placeholder="none"
            value={f.labels}
            onInput={(e) => set('labels', e.currentTarget.value)}
          />
        </Field>
        <Field
          label="Image"
          htmlFor="forge-image"
          error={errors.image}
          hint="The container image its jobs run in. Empty: the default image (in Jobs below)."
        >
          <input
            id="forge-image"
            type="text"
            autoComplete="off"
            spellcheck={false}
            placeholder="default image"
            value={f.image}
            onInput={(e) => set('image', e.currentTarget.value)}
          />
        </Field>
      </fieldset>

      <div class="buttons">
        <button type="button" id="forge-test" disabled={busy !== null} onClick={test}>
          {busy === 'test' ? 'Testing…' : 'Test connection'}
        </button>
        <button type="submit" id="forge-save" class="primary" disabled={busy !== null}>
          {busy === 'save' ? 'Saving…' : editing ? 'Save changes' : 'Save'}
        </button>
        {editing && onCancel && (
          <button type="button" id="forge-cancel" disabled={busy !== null} onClick={onCancel}>
            {saved?.ok ? 'Done' : 'Cancel'}
          </button>
        )}
      </div>

      <div id="forge-test-result" class="result" aria-live="polite">
        {tested?.ok === false && <ErrorMessage error={tested.error} />}
        {tested?.ok && <TestOutcome result={tested.value} />}
      </div>
      <div id="forge-save-result" class="result" aria-live="polite">
        {saved?.ok === false && <ErrorMessage error={saved.error} />}
        {saved?.ok && (
          <p class="success">
            Saved <strong>{saved.value.name}</strong>. {saved.value.note}
          </p>
        )}
      </div>
    </form>
  );
}

function TestOutcome({ result }: { result: TestResult }) {
  if (result.ok) {
    return (
      <p class="success">
        Connection works. {result.message}
      </p>
    );
  }
  return (
    <div class="failure">
      <p>{result.message}</p>
      {result.missing.length > 0 && (
        <>
          <p>Missing permissions:</p>
          <ul>
            {result.missing.map((m) => (
              <li class="missing" key={m}>
                {m}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
