// Turning daemon data into words: a job's state as a person says it, the header's status
// line, relative and absolute times, durations.
import type { Job, Status } from './api';

/** Where a job is in its life, coarser than JobState: what the filters and colours use. */
export type JobPhase = 'queued' | 'active' | 'succeeded' | 'failed' | 'finished';

const LIVE_WORDS: Partial<Record<Job['state'], string>> = {
  queued: 'queued',
  claiming: 'picking up',
  claimed: 'picked up',
  starting: 'starting',
  running: 'running',
};

export function isTerminal(job: Pick<Job, 'state'>): boolean {
  return job.state === 'finished' || job.state === 'failed' || job.state === 'cleaned';
}

export function jobPhase(job: Pick<Job, 'state' | 'conclusion'>): JobPhase {
  if (job.state === 'queued') return 'queued';
  if (!isTerminal(job)) return 'active';
  if (job.conclusion === 'success') return 'succeeded';
  if (job.conclusion !== '' || job.state === 'failed') return 'failed';
  return 'finished';
}

/** "queued", "picking up", "running", "succeeded", "failed", …; a state this UI does not know, as is. */
export function jobStateWord(job: Pick<Job, 'state' | 'conclusion'>): string {
  const live = LIVE_WORDS[job.state];
  if (live) return live;
  return isTerminal(job) ? jobPhase(job) : job.state;
}

/** "2 running · 1 queued · paused · worker VM ready"; "idle" when nothing runs or waits. */
export function statusLine(status: Status): string {
  const parts: string[] = [];
  if (status.activeJobs > 0) parts.push(`${status.activeJobs} running`);
  if (status.queuedJobs > 0) parts.push(`${status.queuedJobs} queued`);
  if (parts.length === 0) parts.push('idle');
  if (status.state !== 'running') parts.push(status.state);
  for (const w of status.workers ?? []) parts.push(`${w.name} ${w.state}${w.healthy ? '' : ' (died)'}`);
  return parts.join(' · ');
}

export function parseTime(iso: string | null): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** "12s", "4m 05s", "2h 03m", "3d 4h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "just now", "5 min ago", "3 h ago", "2 days ago". */
export function formatRelative(t: number, now: number): string {
  const s = Math.round((now - t) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ago`;
  const d = Math.floor(h / 24);
  return d === 1 ? 'yesterday' : `${d} days ago`;
}

export function formatAbsolute(t: number): string {
  return new Date(t).toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** How long a job ran (or has been running), or null before it started. */
export function jobDuration(job: Job, now: number): number | null {
  const start = parseTime(job.startedAt);
  if (start === null) return null;
  const end = parseTime(job.finishedAt) ?? (isTerminal(job) ? null : now);
  return end === null ? null : end - start;
}

/** The time a job is ordered by: the earliest it has. */
function jobTime(job: Job): number {
  return (
    parseTime(job.queuedAt) ??
    parseTime(job.claimedAt) ??
    parseTime(job.startedAt) ??
    parseTime(job.finishedAt) ??
    Number.POSITIVE_INFINITY
  );
}

/** Newest first (a job without any time yet counts as newest); stable otherwise. */
export function sortNewestFirst(jobs: Job[]): Job[] {
  return jobs
    .map((job, i) => ({ job, i, t: jobTime(job) }))
    .sort((a, b) => (a.t === b.t ? a.i - b.i : b.t - a.t))
    .map((x) => x.job);
}
