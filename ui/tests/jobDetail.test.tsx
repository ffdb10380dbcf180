// The job detail: facts and timings, live updates, the streamed log, search, copy, kill (asked
// in the in-app confirm dialog).
import { fireEvent, waitFor } from '@testing-library/preact';
import type { Channel } from '@tauri-apps/api/core';
import { describe, expect, it, vi } from 'vitest';
import type { Job, LogEvent } from '../src/api';
import { appState, job } from './fixtures';
import { ChannelDriver, emitEvent, fakeIpc, rejectWith, type FakeIpc } from './ipc';
import { $, renderApp } from './render';

const ID = 'github:octo-org#4242';
const HASH = '#/jobs/github%3Aocto-org%234242';

interface Opened {
  ipc: FakeIpc;
  log: ChannelDriver;
}

async function openJob(j: Job): Promise<Opened> {
  let channel: Channel<LogEvent> | null = null;
  const ipc = fakeIpc({
    app_state: () => appState(),
    list_jobs: () => [j],
    get_job: () => j,
    follow_logs: (args) => {
      channel = args.onEvent as Channel<LogEvent>;
      return 7;
    },
    stop_logs: () => null,
    kill_job: () => null,
    open_url: () => null,
  });
  await renderApp(HASH);
  await waitFor(() => expect(document.querySelector('#job-state')).not.toBeNull());
  await waitFor(() => expect(channel).not.toBeNull());
  await waitFor(() => expect($('#log-status').dataset.stream).toBe('streaming'));
  return { ipc, log: new ChannelDriver(channel!) };
}

describe('job detail', () => {
  it('shows the job, its timings, and asks for its log by id', async () => {
    const { ipc } = await openJob(job({ id: ID, image: 'debian:trixie', runnerName: 'ephemerd-abc' }));
    expect(ipc.callsOf('get_job')).toEqual([{ id: ID }]);
    expect(ipc.callsOf('follow_logs')[0].id).toBe(ID);
    expect($('#job-state').textContent).toBe('running');
    expect($('#job-state').dataset.state).toBe('running');
    expect($('#job-image').textContent).toBe('debian:trixie');
    expect($('#job-runner').textContent).toBe('ephemerd-abc');
    const steps = Array.from(document.querySelectorAll('#job-timings li'));
    expect(steps.map((li) => li.className)).toEqual(['done', 'done', 'done', 'pending']);
    expect(steps[1].querySelector('.gap')?.textContent).toBe('+2s');
    expect(steps[2].querySelector('.gap')?.textContent).toBe('+3s');
  });

  it('streams log events from the channel into #job-log', async () => {
    const { log } = await openJob(job({ id: ID }));
    await log.send({ kind: 'data', text: 'Step 1: checkout\n' });
    await log.send({ kind: 'data', text: '\u001b[32mok\u001b[0m\n' });
    expect($('#job-log').textContent).toBe('Step 1: checkout\nok\n');
    await log.send({ kind: 'end' });
    expect($('#log-status').dataset.stream).toBe('ended');
  });

  it('shows a log error with its code', async () => {
    const { log } = await openJob(job({ id: ID }));
    await log.send({ kind: 'error', error: { code: 'log_unavailable', message: 'The log is gone.' } });
    expect($('.log .error').dataset.code).toBe('log_unavailable');
    expect($('.log .error').textContent).toBe('The log is gone.');
  });

  it('stops following when the view goes away', async () => {
    const { ipc } = await openJob(job({ id: ID }));
    window.location.hash = '#/jobs';
    await waitFor(() => expect(ipc.callsOf('stop_logs')).toEqual([{ handle: 7 }]));
  });

  it('does not stop a log that already ended', async () => {
    const { ipc, log } = await openJob(job({ id: ID }));
    await log.send({ kind: 'end' });
    window.location.hash = '#/settings';
    await waitFor(() => expect(document.querySelector('#settings')).not.toBeNull());
    expect(ipc.callsOf('stop_logs')).toEqual([]);
  });

  it('highlights and counts search matches', async () => {
    const { log } = await openJob(job({ id: ID }));
    await log.send({ kind: 'data', text: 'error: one\nfine\nERROR: two\nerror: three\n' });
    fireEvent.input($('#log-search'), { target: { value: 'error' } });
    expect($('#log-search-count').textContent).toBe('3 matches');
    expect(document.querySelectorAll('#job-log mark')).toHaveLength(3);
    expect($('#job-log').textContent).toBe('error: one\nfine\nERROR: two\nerror: three\n');
    fireEvent.input($('#log-search'), { target: { value: 'fine' } });
    expect($('#log-search-count').textContent).toBe('1 match');
    fireEvent.input($('#log-search'), { target: { value: 'absent' } });
    expect($('#log-search-count').textContent).toBe('no matches');
  });

  it('copies the log', async () => {
    const writeText = vi.fn(() => Promise.resolve());
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    const { log } = await openJob(job({ id: ID }));
    await log.send({ kind: 'data', text: 'hello\n' });
    fireEvent.click($('#log-copy'));
    await waitFor(() => expect($('#log-copy').textContent).toBe('Copied'));
    expect(writeText).toHaveBeenCalledWith('hello\n');
  });

  it('follows the log with #log-follow', async () => {
    const { log } = await openJob(job({ id: ID }));
    const pre = $('#job-log');
    Object.defineProperty(pre, 'scrollHeight', { value: 5000, configurable: true });
    await log.send({ kind: 'data', text: 'a\n' });
    expect(pre.scrollTop).toBe(5000);
    fireEvent.click($('#log-follow'));
    pre.scrollTop = 10;
    await log.send({ kind: 'data', text: 'b\n' });
    expect(pre.scrollTop).toBe(10);
  });

  it('asks in the dialog, and kills a running job only after OK', async () => {
    const { ipc } = await openJob(job({ id: ID, workflow: 'CI', name: 'build' }));
    const kill = $('#kill-job') as HTMLButtonElement;
    expect(kill.disabled).toBe(false);
    expect(document.querySelector('#confirm-dialog')).toBeNull();
    fireEvent.click(kill);
    const dialog = await waitFor(() => $('#confirm-dialog'));
    expect(dialog.getAttribute('role')).toBe('dialog');
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect(dialog.textContent).toContain('Kill CI / build?');
    expect($('#confirm-ok').textContent).toBe('Kill job');
    expect(document.activeElement).toBe($('#confirm-cancel'));
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('kill_job')).toEqual([]);
    fireEvent.click($('#confirm-ok'));
    await waitFor(() => expect(ipc.callsOf('kill_job')).toEqual([{ id: ID }]));
    expect(document.querySelector('#confirm-dialog')).toBeNull();
  });

  it('does not kill when the dialog is cancelled', async () => {
    const { ipc } = await openJob(job({ id: ID }));
    fireEvent.click($('#kill-job'));
    fireEvent.click(await waitFor(() => $('#confirm-cancel')));
    await waitFor(() => expect(document.querySelector('#confirm-dialog')).toBeNull());
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('kill_job')).toEqual([]);
    expect(($('#kill-job') as HTMLButtonElement).disabled).toBe(false);
  });

  it('cancels the kill with Escape and confirms it with Enter', async () => {
    const { ipc } = await openJob(job({ id: ID }));
    fireEvent.click($('#kill-job'));
    await waitFor(() => $('#confirm-dialog'));
    fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    await waitFor(() => expect(document.querySelector('#confirm-dialog')).toBeNull());
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('kill_job')).toEqual([]);

    fireEvent.click($('#kill-job'));
    await waitFor(() => $('#confirm-dialog'));
    fireEvent.keyDown(document.activeElement!, { key: 'Enter' });
    await waitFor(() => expect(ipc.callsOf('kill_job')).toEqual([{ id: ID }]));
    expect(document.querySelector('#confirm-dialog')).toBeNull();
  });

  it('closes an open kill question when the view goes away', async () => {
    const { ipc } = await openJob(job({ id: ID }));
    fireEvent.click($('#kill-job'));
    await waitFor(() => $('#confirm-dialog'));
    window.location.hash = '#/jobs';
    await waitFor(() => expect(document.querySelector('#confirm-dialog')).toBeNull());
    expect(ipc.callsOf('kill_job')).toEqual([]);
  });

  it('shows a refused kill as the error sentence', async () => {
    const { ipc } = await openJob(job({ id: ID }));
    ipc.on({ kill_job: rejectWith({ code: 'job_not_running', message: 'That job is not running any more.' }) });
    fireEvent.click($('#kill-job'));
    fireEvent.click(await waitFor(() => $('#confirm-ok')));
    const error = await waitFor(() => $('#job-detail .error[data-code="job_not_running"]'));
    expect(error.textContent).toBe('That job is not running any more.');
  });

  it('disables kill unless running, and applies daemon:job live', async () => {
    const queued = job({ id: ID, state: 'queued', claimedAt: null, startedAt: null });
    await openJob(queued);
    expect(($('#kill-job') as HTMLButtonElement).disabled).toBe(true);
    await emitEvent('daemon:job', { ...queued, state: 'running', startedAt: '2025-11-25T10:00:09Z' });
    expect($('#job-state').textContent).toBe('running');
    expect(($('#kill-job') as HTMLButtonElement).disabled).toBe(false);
    await emitEvent('daemon:job', job({ id: 'github:octo-org#1', state: 'failed' }));
    expect($('#job-state').textContent).toBe('running');
    await emitEvent('daemon:job', {
      ...queued,
      state: 'cleaned',
      conclusion: 'success',
      startedAt: '2025-11-25T10:00:09Z',
      finishedAt: '2025-11-25T10:01:00Z',
    });
    expect($('#job-state').textContent).toBe('succeeded');
    expect($('#job-state').dataset.state).toBe('cleaned');
    expect(($('#kill-job') as HTMLButtonElement).disabled).toBe(true);
  });

  it('opens the forge page through open_url', async () => {
    const j = job({ id: ID });
    const { ipc } = await openJob(j);
    fireEvent.click($('#job-link'));
    await waitFor(() => expect(ipc.callsOf('open_url')).toEqual([{ url: j.htmlUrl }]));
  });

  it('says when the job is not found', async () => {
    fakeIpc({
      app_state: () => appState(),
      get_job: rejectWith({ code: 'job_not_found', message: 'That job is no longer in the history.' }),
      follow_logs: rejectWith({ code: 'job_not_found', message: 'That job is no longer in the history.' }),
      stop_logs: () => null,
    });
    await renderApp(HASH);
    const error = await waitFor(() => $('#job-detail .error'));
    expect(error.dataset.code).toBe('job_not_found');
    expect(document.querySelector('#kill-job')).toBeNull();
  });
});
