// #job-timings: queued → picked up → started → finished, each with its time and the gap
// since the step before.
import type { Job } from '../api';
import { formatAbsolute, formatDuration, parseTime } from '../format';

const STEPS: { key: 'queuedAt' | 'claimedAt' | 'startedAt' | 'finishedAt'; label: string }[] = [
  { key: 'queuedAt', label: 'Queued' },
  { key: 'claimedAt', label: 'Picked up' },
  { key: 'startedAt', label: 'Started' },
  { key: 'finishedAt', label: 'Finished' },
];

export function JobTimings({ job }: { job: Job }) {
  let previous: number | null = null;
  return (
    <ol id="job-timings" class="timings">
      {STEPS.map(({ key, label }) => {
        const t = parseTime(job[key]);
        const gap = t !== null && previous !== null ? t - previous : null;
        if (t !== null) previous = t;
        return (
          <li key={key} data-step={key} class={t === null ? 'pending' : 'done'}>
            <span class="label">{label}</span>
            <time dateTime={job[key] ?? undefined}>{t === null ? '—' : formatAbsolute(t)}</time>
            {gap !== null && <span class="gap">+{formatDuration(gap)}</span>}
          </li>
        );
      })}
    </ol>
  );
}
