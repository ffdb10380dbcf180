// The job list's filters: #filter-state, #filter-text and #show-history.
import type { StateFilter } from '../jobs';

const OPTIONS: { value: StateFilter; label: string }[] = [
  { value: 'all', label: 'All' },
  { value: 'running', label: 'Running' },
  { value: 'queued', label: 'Queued' },
  { value: 'finished', label: 'Finished' },
  { value: 'failed', label: 'Failed' },
];

interface Props {
  state: StateFilter;
  onState: (s: StateFilter) => void;
  text: string;
  onText: (t: string) => void;
  history: boolean;
  onHistory: (h: boolean) => void;
}

export function JobsFilters({ state, onState, text, onText, history, onHistory }: Props) {
  return (
    <div class="filters">
      <label>
        Show
        <select id="filter-state" value={state} onChange={(e) => onState(e.currentTarget.value as StateFilter)}>
          {OPTIONS.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      </label>
      <input
        id="filter-text"
        type="search"
        placeholder="Search repository, workflow, job, label"
        aria-label="Search jobs"
        value={text}
        onInput={(e) => onText(e.currentTarget.value)}
      />
      <label class="check">
        <input id="show-history" type="checkbox" checked={history} onChange={(e) => onHistory(e.currentTarget.checked)} />
        Whole history
      </label>
    </div>
  );
}
