// The header's daemon controls: #daemon-state, #pause-toggle (pause / resume) and #drain
// with its small confirm.
import { useState } from 'preact/hooks';
import { pause, resume, type Status, type UiError } from '../api';
import { useAppState } from '../appState';
import { DrainConfirm } from './DrainConfirm';
import { ErrorMessage } from './ErrorMessage';

export function DaemonControls() {
  const { state, setStatus } = useAppState();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);
  const [drainOpen, setDrainOpen] = useState(false);

  const connected = state?.health.state === 'connected';
  const status = connected ? (state?.status ?? null) : null;
  const runState = status?.state ?? null;

  async function run(action: () => Promise<Status>) {
    setBusy(true);
    setError(null);
    try {
      setStatus(await action());
    } catch (e) {
      setError(e as UiError);
    } finally {
      setBusy(false);
    }
  }

  const paused = runState === 'paused';
  const canToggle = !busy && (runState === 'running' || runState === 'paused');
  const canDrain = !busy && (runState === 'running' || runState === 'paused');

  return (
    <div class="daemon-controls">
      <span id="daemon-state" class={`daemon-state ${runState ?? 'offline'}`} data-state={runState ?? 'offline'}>
        {runState ?? 'offline'}
      </span>
      <button
        type="button"
        id="pause-toggle"
        disabled={!canToggle}
        title={paused ? 'Take new jobs again' : 'Finish running jobs but take no new ones until resumed'}
        onClick={() => run(paused ? resume : pause)}
      >
        {paused ? 'Resume' : 'Pause'}
      </button>
      <span class="popover-anchor">
        <button
          type="button"
          id="drain"
          disabled={!canDrain}
          aria-expanded={drainOpen}
          onClick={() => setDrainOpen(!drainOpen)}
        >
          Drain…
        </button>
        {drainOpen && (
          <DrainConfirm
            onCancel={() => setDrainOpen(false)}
            onDone={(next) => {
              setStatus(next);
              setDrainOpen(false);
            }}
          />
        )}
      </span>
      <ErrorMessage error={error} />
    </div>
  );
}
