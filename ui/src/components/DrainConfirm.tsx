// The drain confirm: finish what runs, take nothing new, then stop; with an optional
// timeout in minutes (#drain-timeout) after which running jobs are stopped (empty: the
// daemon's configured drain_timeout).
import { useState } from 'preact/hooks';
import { drain, type Status, type UiError } from '../api';
import { ErrorMessage } from './ErrorMessage';

interface Props {
  onCancel: () => void;
  onDone: (status: Status) => void;
}

export function DrainConfirm({ onCancel, onDone }: Props) {
  const [minutes, setMinutes] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<UiError | null>(null);

  const trimmed = minutes.trim();
  const value = trimmed === '' ? null : Number(trimmed);
  const invalid = value !== null && (!Number.isFinite(value) || value <= 0);

  async function confirm(e: Event) {
    e.preventDefault();
    if (invalid) return;
    setBusy(true);
    setError(null);
    try {
      onDone(await drain(value === null ? null : Math.round(value * 60)));
    } catch (err) {
      setError(err as UiError);
      setBusy(false);
    }
  }

  return (
    <form class="popover drain-confirm" onSubmit={confirm}>
      <p>Take no new jobs, let the running ones finish, then stop ephemerd.</p>
      <label>
        Stop the remaining jobs after
        <input
          id="drain-timeout"
          type="number"
          min="1"
          step="1"
          inputMode="numeric"
          placeholder="default"
          value={minutes}
          onInput={(e) => setMinutes(e.currentTarget.value)}
        />
        minutes
      </label>
      {invalid && <p class="field-error">Enter a number of minutes, or leave it empty for the configured default.</p>}
      <ErrorMessage error={error} />
      <div class="buttons">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" id="drain-confirm" class="danger" disabled={busy || invalid}>
          {busy ? 'Draining…' : 'Drain'}
        </button>
      </div>
    </form>
  );
}
