// #job-settings: how jobs run, as the daemon has them: jobs at once (#jobs-max), the default image
// (#jobs-image), label profiles (.profile rows: labels → image) and the webhook address (#jobs-webhook). Loaded from the daemon when it is
// connected; saved through it (#jobs-save), which writes its config file and applies them at once.
import { useEffect, useState } from 'preact/hooks';
import { getJobSettings, saveJobSettings, type UiError } from '../api';
import { useAppState } from '../appState';
import {
  hasErrors,
  MAX_CONCURRENT,
  toFields,
  toJobSettings,
  validateJobSettings,
  type JobSettingsErrors,
  type JobSettingsFields,
  type ProfileFields,
} from '../jobSettingsForm';
import { ErrorMessage } from './ErrorMessage';
import { Field } from './Field';

export function JobSettingsForm() {
  const { state } = useAppState();
  const connected = state?.health.state === 'connected';
  const [fields, setFields] = useState<JobSettingsFields | null>(null);
  const [configPath, setConfigPath] = useState('');
  const [errors, setErrors] = useState<JobSettingsErrors>({ profiles: {} });
  const [error, setError] = useState<UiError | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Edited and not saved: a reconnect does not load the daemon's settings over the edits.
  const [dirty, setDirty] = useState(false);

  useEffect(() => {
    if (!connected || dirty) return;
    let live = true;
    getJobSettings().then(
      (s) => {
        if (!live) return;
        setFields(toFields(s));
        setConfigPath(s.configPath);
        setError(null);
      },
      (e: UiError) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [connected]);

  const set = (patch: Partial<JobSettingsFields>) => {
    setDirty(true);
    setFields((f) => (f ? { ...f, ...patch } : f));
  };
  const setProfile = (i: number, patch: Partial<ProfileFields>) => {
    setDirty(true);
    setFields((f) => (f ? { ...f, profiles: f.profiles.map((p, j) => (j === i ? { ...p, ...patch } : p)) } : f));
  };
  const removeProfile = (i: number) => {
    set({ profiles: (fields?.profiles ?? []).filter((_, j) => j !== i) });
    // Errors are shown by row: the rows below move up.
    setErrors((e) => ({ ...e, profiles: {} }));
  };

  async function save(e: Event) {
    e.preventDefault();
    if (!fields) return;
    const found = validateJobSettings(fields);
    setErrors(found);
    setNote(null);
    setError(null);
    if (hasErrors(found)) return;
    setBusy(true);
    try {
      const saved = await saveJobSettings(toJobSettings(fields, configPath));
      if (saved.settings) {
        setFields(toFields(saved.settings));
        setConfigPath(saved.settings.configPath);
      }
      setDirty(false);
      setNote(saved.note);
    } catch (err) {
      setError(err as UiError);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section id="job-settings" class="card">
      <h2>Jobs</h2>
      {!connected && <p class="muted">Shown when ephemerd is running.</p>}
      {connected && !fields && !error && <p class="muted">Loading…</p>}
      {fields && (
        <form onSubmit={save} noValidate>
          <Field
            label="Jobs at once"
            htmlFor="jobs-max"
            error={errors.maxConcurrent}
            hint="Each job is a container with its own CPU and memory limits."
          >
            <input
              id="jobs-max"
              type="number"
              class="short"
              min={1}
              max={MAX_CONCURRENT}
              value={fields.maxConcurrent}
              onInput={(e) => set({ maxConcurrent: e.currentTarget.value })}
            />
          </Field>
          <Field
            label="Default image"
            htmlFor="jobs-image"
            error={errors.defaultImage}
            hint="The container image a job runs in when neither a label profile nor its forge names one."
          >
            <input
              id="jobs-image"
              type="text"
              autoComplete="off"
              spellcheck={false}
              value={fields.defaultImage}
              onInput={(e) => set({ defaultImage: e.currentTarget.value })}
            />
          </Field>
          <fieldset class="choice">
            <legend>Images by label</legend>
            <p class="hint">
              A job whose runs-on has all of a row's labels runs in its image (the row with the most labels wins).
            </p>
            {fields.profiles.length > 0 && (
              <ul id="profiles" class="profiles">
                {fields.profiles.map((p, i) => (
                  <li class="profile" data-index={i} key={i}>
                    <input
                      class="profile-labels"
                      type="text"
                      aria-label="Labels"
                      placeholder="labels, comma-separated"
                      spellcheck={false}
                      value={p.labels}
                      onInput={(e) => setProfile(i, { labels: e.currentTarget.value })}
                    />
                    <span aria-hidden="true">→</span>
                    <input
                      class="profile-image"
                      type="text"
                      aria-label="Image"
                      placeholder="default image"
                      spellcheck={false}
                      value={p.image}
                      onInput={(e) => setProfile(i, { image: e.currentTarget.value })}
                    />
                    <button
                      type="button"
                      class="profile-remove"
                      aria-label="Remove this row"
                      onClick={() => removeProfile(i)}
                    >
                      Remove
                    </button>
                    {(errors.profiles[i]?.labels || errors.profiles[i]?.image) && (
                      <small class="field-error profile-error">
                        {[errors.profiles[i]?.labels, errors.profiles[i]?.image].filter(Boolean).join(' ')}
                      </small>
                    )}
                  </li>
                ))}
              </ul>
            )}
            <button
              type="button"
              id="profile-add"
              onClick={() => set({ profiles: [...fields.profiles, { name: '', labels: '', image: '' }] })}
            >
              Add a row
            </button>
          </fieldset>
          <Field
            label="Webhook address"
            htmlFor="jobs-webhook"
            error={errors.webhookListen}
            hint="Where ephemerd takes webhook deliveries (IP:port, e.g. 127.0.0.1:8089), for forges that send them; a tunnel or reverse proxy forwards the forge's requests here. Empty: none, forges are polled."
          >
            <input
              id="jobs-webhook"
              type="text"
              class="short"
              autoComplete="off"
              spellcheck={false}
              placeholder="none"
              value={fields.webhookListen}
              onInput={(e) => set({ webhookListen: e.currentTarget.value })}
            />
          </Field>
          <div class="buttons">
            <button type="submit" id="jobs-save" class="primary" disabled={busy}>
              {busy ? 'Saving…' : 'Save'}
            </button>
          </div>
          {configPath && <small class="hint">These live in {configPath}; its comments and other settings are kept.</small>}
        </form>
      )}
      {note && (
        <p id="jobs-save-result" class="success" role="status">
          {note}
        </p>
      )}
      <ErrorMessage error={error} id="jobs-error" />
    </section>
  );
}
