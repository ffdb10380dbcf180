// #health: always-visible word on the daemon. Connected: its version and the status line.
// Otherwise a plain sentence and, where there is one, the action that fixes it.
import type { AppState } from '../api';
import { useAppState } from '../appState';
import { statusLine } from '../format';
import { DaemonActions } from './DaemonActions';
import { ErrorMessage } from './ErrorMessage';

const SENTENCES: Record<Exclude<AppState['health']['state'], 'connected'>, string> = {
  starting: 'Starting the daemon…',
  daemon_stopped: 'ephemerd is not running, so no jobs are picked up.',
  not_installed: 'The ephemerd service is not installed yet.',
  unreachable: 'ephemerd cannot be reached.',
};

/** `withActions` is false where the page shows the same buttons itself (onboarding). */
export function HealthBanner({ withActions = true }: { withActions?: boolean }) {
  const { state, error, refresh } = useAppState();

  if (!state) {
    if (error) {
      return (
        <div id="health" class="health bad" data-state="error">
          <ErrorMessage error={error} />
          <button type="button" id="health-retry" onClick={() => void refresh()}>
            Try again
          </button>
        </div>
      );
    }
    return (
      <div id="health" class="health" data-state="connecting">
        <span class="dot" /> Connecting…
      </div>
    );
  }

  const { health, status } = state;
  if (health.state === 'connected') {
    return (
      <div id="health" class="health ok" data-state="connected">
        <span class="dot" />
        <span class="version">ephemerd {status?.version ?? ''}</span>
        <span class="sep">·</span>
        <span id="status-line">{status ? statusLine(status) : 'connected'}</span>
      </div>
    );
  }

  return (
    <div id="health" class={`health ${health.state === 'starting' ? 'busy' : 'bad'}`} data-state={health.state}>
      <span class="dot" />
      <span class="sentence">{SENTENCES[health.state]}</span>
      {health.reason && <span class="reason">{health.reason}</span>}
      {withActions && <DaemonActions state={health.state} />}
    </div>
  );
}
