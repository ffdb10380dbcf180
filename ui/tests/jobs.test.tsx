// The job list: rows from list_jobs, live updates from daemon:job / daemon:jobs, filters.
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { Job } from '../src/api';
import { appState, job } from './fixtures';
import { emitEvent, fakeIpc } from './ipc';
import { $, $$, renderApp } from './render';

const running = job({ id: 'github:octo-org#1', repo: 'octo-org/api', workflow: 'CI', name: 'test', queuedAt: '2025-11-25T10:03:00Z' });
const queued = job({
  id: 'github:octo-org#2',
  repo: 'octo-org/web',
  workflow: 'Deploy',
  name: 'ship',
  labels: ['gpu'],
  state: 'queued',
  queuedAt: '2025-11-25T10:02:00Z',
  claimedAt: null,
  startedAt: null,
});
const succeeded = job({
  id: 'forgejo:me#3',
  provider: 'forgejo:me',
  repo: 'me/dots',
  state: 'cleaned',
  conclusion: 'success',
  exitCode: 0,
  queuedAt: '2025-11-25T10:01:00Z',
  finishedAt: '2025-11-25T10:04:05Z',
});
const failed = job({
  id: 'github:octo-org#4',
  state: 'finished',
  conclusion: 'killed',
  queuedAt: '2025-11-25T10:00:00Z',
  finishedAt: '2025-11-25T10:01:05Z',
});

function rowIds(): string[] {
  return $$('#jobs-table tbody tr').map((tr) => tr.dataset.jobId ?? '');
}

function cell(id: string, name: string): string {
  return $(`tr[data-job-id="${id}"] td.${name}`).textContent ?? '';
}

async function showJobs(list: Job[]) {
  const ipc = fakeIpc({ app_state: () => appState(), list_jobs: () => list });
  await renderApp('#/jobs');
  await waitFor(() => expect(document.querySelector('#jobs-table')).not.toBeNull());
  return ipc;
}

describe('jobs table', () => {
  it('renders one row per job with its state in words', async () => {
    const ipc = await showJobs([running, queued, succeeded, failed]);
    expect(ipc.callsOf('list_jobs')).toEqual([{ all: false }]);
    expect(rowIds()).toEqual(['github:octo-org#1', 'github:octo-org#2', 'forgejo:me#3', 'github:octo-org#4']);
    expect($('tr[data-job-id="github:octo-org#1"]').dataset.state).toBe('running');
    expect(cell('github:octo-org#1', 'state')).toBe('running');
    expect(cell('github:octo-org#2', 'state')).toBe('queued');
    expect(cell('forgejo:me#3', 'state')).toBe('succeeded');
    expect(cell('github:octo-org#4', 'state')).toBe('failed');
    expect(cell('github:octo-org#4', 'conclusion')).toBe('killed');
    expect(cell('forgejo:me#3', 'duration')).toBe('4m 00s');
    expect(cell('forgejo:me#3', 'forge')).toContain('forgejo:me');
    expect($('tr[data-job-id="forgejo:me#3"] svg').dataset.kind).toBe('forgejo');
    expect(cell('github:octo-org#2', 'labels')).toBe('gpu');
    expect($('tr[data-job-id="forgejo:me#3"] td.started').title).not.toBe('');
  });

  it('says so when there are no jobs', async () => {
    await showJobs([]);
    expect($('#jobs-empty').textContent).toBe(
      'No jobs yet. Queue a workflow on a connected forge and it shows up here.',
    );
  });

  it('upserts a job from daemon:job', async () => {
    await showJobs([running, queued]);
    await emitEvent('daemon:job', { ...queued, state: 'claiming', claimedAt: '2025-11-25T10:02:01Z' });
    expect(cell('github:octo-org#2', 'state')).toBe('picking up');
    expect($('tr[data-job-id="github:octo-org#2"]').dataset.state).toBe('claiming');
    expect(rowIds()).toHaveLength(2);

    const fresh = job({ id: 'github:octo-org#9', state: 'queued', queuedAt: '2025-11-25T10:09:00Z' });
    await emitEvent('daemon:job', fresh);
    expect(rowIds()).toEqual(['github:octo-org#9', 'github:octo-org#1', 'github:octo-org#2']);
  });

  it('replaces the unfinished jobs with a daemon:jobs snapshot, keeping finished ones', async () => {
    await showJobs([running, queued, succeeded]);
    const other = job({ id: 'github:octo-org#7', state: 'starting', queuedAt: '2025-11-25T10:05:00Z' });
    await emitEvent('daemon:jobs', [other]);
    expect(rowIds()).toEqual(['github:octo-org#7', 'forgejo:me#3']);
  });

  it('filters by state', async () => {
    await showJobs([running, queued, succeeded, failed]);
    const select = $('#filter-state');
    fireEvent.change(select, { target: { value: 'running' } });
    expect(rowIds()).toEqual(['github:octo-org#1']);
    fireEvent.change(select, { target: { value: 'queued' } });
    expect(rowIds()).toEqual(['github:octo-org#2']);
    fireEvent.change(select, { target: { value: 'finished' } });
    expect(rowIds()).toEqual(['forgejo:me#3', 'github:octo-org#4']);
    fireEvent.change(select, { target: { value: 'failed' } });
    expect(rowIds()).toEqual(['github:octo-org#4']);
    fireEvent.change(select, { target: { value: 'all' } });
    expect(rowIds()).toHaveLength(4);
  });

  it('searches repo, workflow, name and labels', async () => {
    await showJobs([running, queued, succeeded]);
    const search = $('#filter-text');
    fireEvent.input(search, { target: { value: 'WEB' } });
    expect(rowIds()).toEqual(['github:octo-org#2']);
    fireEvent.input(search, { target: { value: 'deploy' } });
    expect(rowIds()).toEqual(['github:octo-org#2']);
    fireEvent.input(search, { target: { value: 'gpu' } });
    expect(rowIds()).toEqual(['github:octo-org#2']);
    fireEvent.input(search, { target: { value: 'test' } });
    expect(rowIds()).toEqual(['github:octo-org#1']);
    fireEvent.input(search, { target: { value: 'nothing like it' } });
    expect(rowIds()).toEqual([]);
    expect($('#jobs-empty').textContent).toBe('No jobs match these filters.');
  });

  it('asks for the whole history', async () => {
    const ipc = await showJobs([running]);
    ipc.on({ list_jobs: ({ all }) => (all ? [running, failed] : [running]) });
    fireEvent.click($('#show-history'));
    await waitFor(() => expect(rowIds()).toEqual(['github:octo-org#1', 'github:octo-org#4']));
    expect(ipc.callsOf('list_jobs')).toEqual([{ all: false }, { all: true }]);
  });

  it('opens a job when its row is clicked', async () => {
    await showJobs([running]);
    fireEvent.click($('tr[data-job-id="github:octo-org#1"] td.repo'));
    expect(window.location.hash).toBe('#/jobs/github%3Aocto-org%231');
  });
});
