// Keeping a job list current from the daemon's events (upsert one job, or take a fresh
// snapshot of the unfinished ones) and filtering it.
import type { Job } from './api';
import { isTerminal, jobPhase, sortNewestFirst } from './format';

export type StateFilter = 'all' | 'running' | 'queued' | 'finished' | 'failed';

/** `daemon:job`: replace the job with the same id, or add it. */
export function upsertJob(jobs: Job[], job: Job): Job[] {
  const i = jobs.findIndex((j) => j.id === job.id);
  if (i === -1) return sortNewestFirst([job, ...jobs]);
  const next = jobs.slice();
  next[i] = job;
  return next;
}

/**
 * `daemon:jobs`: the snapshot is the whole truth about unfinished jobs, so every unfinished
 * job not in it is gone; finished ones (history) stay unless the snapshot has them too.
 */
export function applySnapshot(jobs: Job[], snapshot: Job[]): Job[] {
  const fresh = new Set(snapshot.map((j) => j.id));
  const kept = jobs.filter((j) => isTerminal(j) && !fresh.has(j.id));
  return sortNewestFirst([...snapshot, ...kept]);
}

export function matchesState(job: Job, filter: StateFilter): boolean {
  const phase = jobPhase(job);
  switch (filter) {
    case 'all':
      return true;
    case 'running':
      return phase === 'active';
    case 'queued':
      return phase === 'queued';
    case 'finished':
      return phase === 'succeeded' || phase === 'failed' || phase === 'finished';
    case 'failed':
      return phase === 'failed';
  }
}

export function matchesText(job: Job, text: string): boolean {
  const needle = text.trim().toLowerCase();
  if (needle === '') return true;
  return [job.repo, job.workflow, job.name, ...job.labels].some((s) => s.toLowerCase().includes(needle));
}
