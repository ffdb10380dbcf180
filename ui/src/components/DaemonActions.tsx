// The way out of a stopped or missing daemon: #start-daemon (start_daemon) or
// #install-daemon (install_daemon, which brings up the OS's admin prompt).
import { useState } from 'preact/hooks';
import { installDaemon, startDaemon, type HealthState, type UiError } from '../api';
import { ErrorMessage } from './ErrorMessage';

export function DaemonActions({ state }: { state: HealthState }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);

  async function run(action: () => Promise<null>) {
    setBusy(true);
    setError(null);
    try {
      await action();
      // The health changes through the next daemon:state event.
    } catch (e) {
      setError(e as UiError);
    } finally {
      setBusy(false);
    }
  }

  return (
    <span class="daemon-actions">
      {state === 'daemon_stopped' && (
        <button type="button" id="start-daemon" class="primary" disabled={busy} onClick={() => run(startDaemon)}>
          {busy ? 'Starting…' : 'Start ephemerd'}
        </button>
      )}
      {state === 'not_installed' && (
        <button type="button" id="install-daemon" class="primary" disabled={busy} onClick={() => run(installDaemon)}>
          {busy ? 'Installing…' : 'Install the service'}
        </button>
      )}
      <ErrorMessage error={error} />
    </span>
  );
}
