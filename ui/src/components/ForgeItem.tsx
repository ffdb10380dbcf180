// One connected forge: kind, name, URL, connection, discovery and where its credential is
// kept (never the secret itself: the UI is never given one), with Edit, Replace and Remove.
import { useState } from 'preact/hooks';
import { removeForge, setCredential, type CredentialSource, type Provider, type UiError } from '../api';
import { formatAbsolute, formatRelative, parseTime } from '../format';
import { useConfirm } from './ConfirmDialog';
import { ErrorMessage } from './ErrorMessage';
import { ForgeIcon } from './ForgeIcon';

const CREDENTIAL: Record<CredentialSource, string> = {
  keyring: 'Stored in keychain',
  'systemd-creds': 'Sealed by systemd-creds (system service)',
  environment: 'From environment',
  app_key: "GitHub App (the daemon reads its key file)",
  file: 'From a file',
  missing: 'Missing: add a token',
};

interface Props {
  provider: Provider;
  onChanged: () => void;
  /** Opens the forge's settings to edit (GitHub forges, which this daemon serves). */
  onEdit?: (name: string) => void;
}

export function ForgeItem({ provider: p, onChanged, onEdit }: Props) {
  const [replacing, setReplacing] = useState(false);
  const [secret, setSecret] = useState('');
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const confirm = useConfirm();

  async function replace(e: Event) {
    e.preventDefault();
    if (secret.trim() === '') return;
    setBusy(true);
    setError(null);
    setNote(null);
    try {
      const result = await setCredential(p.name, secret.trim());
      setSecret('');
      setReplacing(false);
      setNote(result.note);
      onChanged();
    } catch (err) {
      setError(err as UiError);
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    const question = `Remove ${p.name}? ephemerd stops taking its jobs and forgets its token.`;
    if (!(await confirm(question, 'Remove forge'))) return;
    setBusy(true);
    setError(null);
    try {
      await removeForge(p.name);
      onChanged();
    } catch (err) {
      setError(err as UiError);
    } finally {
      setBusy(false);
    }
  }

  const lastPoll = parseTime(p.lastPoll);
  return (
    <li data-forge={p.name} class="forge">
      <div class="forge-head">
        <ForgeIcon kind={p.kind} />
        <strong class="forge-name">{p.name}</strong>
        <span class="muted forge-url">{p.url}</span>
        <span class="spacer" />
        {onEdit && (
          <button type="button" class="edit" disabled={busy} onClick={() => onEdit(p.name)}>
            Edit
          </button>
        )}
        <button type="button" class="replace" disabled={busy} onClick={() => setReplacing(!replacing)}>
          {p.credential === 'missing' ? 'Add token' : 'Replace token'}
        </button>
        <button type="button" class="remove danger" disabled={busy} onClick={remove}>
          Remove
        </button>
      </div>
      <div class="forge-facts">
        <span class={`connection ${p.connected ? 'ok' : 'bad'}`} data-connected={String(p.connected)}>
          {p.connected ? 'Connected' : 'Not connected'}
        </span>
        {p.lastError && <span class="last-error">{p.lastError}</span>}
        <span class="discovery">{p.discovery}</span>
        {lastPoll !== null && (
          <span class="muted" title={formatAbsolute(lastPoll)}>
            last checked {formatRelative(lastPoll, Date.now())}
          </span>
        )}
        <span class={`credential credential-${p.credential}`} data-credential={p.credential}>
          {CREDENTIAL[p.credential] ?? p.credential}
        </span>
      </div>
      {replacing && (
        <form class="replace-form" onSubmit={replace}>
          <input
            type="password"
            class="replace-secret"
            aria-label={`New token for ${p.name}`}
            placeholder="New token"
            autoComplete="off"
            value={secret}
            onInput={(e) => setSecret(e.currentTarget.value)}
          />
          <button type="submit" class="replace-save primary" disabled={busy || secret.trim() === ''}>
            Save token
          </button>
        </form>
      )}
      {note && <p class="note">{note}</p>}
      <ErrorMessage error={error} />
    </li>
  );
}
