// #app-settings: how the daemon is supervised (#mode-user / #mode-service; saved, and used from
// the next start of the app on: #mode-note says so), notifications and starting at login.
import { useState } from 'preact/hooks';
import { setMode, setNotifications, setStartAtLogin, type AppState, type Mode, type UiError } from '../api';
import { useAppState } from '../appState';
import { ErrorMessage } from './ErrorMessage';

export function AppSettings() {
  const { state, setState } = useAppState();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);

  async function apply(action: () => Promise<AppState>) {
    setBusy(true);
    setError(null);
    try {
      setState(await action());
    } catch (e) {
      setError(e as UiError);
    } finally {
      setBusy(false);
    }
  }

  const disabled = busy || !state;
  const mode: Mode | null = state?.mode ?? null;

  return (
    <section id="app-settings" class="card">
      <h2>App</h2>
      <fieldset class="choice">
        <legend>Who runs ephemerd</legend>
        <label class="check option">
          <input
            type="radio"
            id="mode-user"
            name="mode"
            checked={mode === 'user'}
            disabled={disabled}
            onChange={() => apply(() => setMode('user'))}
          />
          <span>
            <strong>This app, while you are logged in</strong>
            <small>
              The app starts the daemon and keeps it running for as long as you are logged in. The default on
              Windows, because WSL belongs to your user.
            </small>
          </span>
        </label>
        <label class="check option">
          <input
            type="radio"
            id="mode-service"
            name="mode"
            checked={mode === 'service'}
            disabled={disabled}
            onChange={() => apply(() => setMode('service'))}
          />
          <span>
            <strong>The system, as a service</strong>
            <small>
              The operating system runs the daemon as a system service, also when nobody is logged in. It is
              installed once, with an administrator prompt.
            </small>
          </span>
        </label>
        <p id="mode-note" class="hint">
          Takes effect the next time the app starts.
        </p>
      </fieldset>
      <label class="check">
        <input
          type="checkbox"
          id="notifications"
          checked={state?.notifications ?? false}
          disabled={disabled}
          onChange={(e) => {
            const enabled = e.currentTarget.checked;
            void apply(() => setNotifications(enabled));
          }}
        />
        Notify when a job fails or the daemon stops
      </label>
      <label class="check">
        <input
          type="checkbox"
          id="start-at-login"
          checked={state?.startAtLogin ?? false}
          disabled={disabled}
          onChange={(e) => {
            const enabled = e.currentTarget.checked;
            void apply(() => setStartAtLogin(enabled));
          }}
        />
        Start the app when you log in
      </label>
      <ErrorMessage error={error} />
    </section>
  );
}
