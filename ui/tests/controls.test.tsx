// The header's status line, pause / resume toggle and drain confirm.
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { appState, status } from './fixtures';
import { emitEvent, fakeIpc, rejectWith } from './ipc';
import { $, renderApp } from './render';

describe('status line', () => {
  it('counts running and queued jobs and names a paused daemon', async () => {
    fakeIpc({
      app_state: () => appState({ status: status({ activeJobs: 2, queuedJobs: 1, state: 'paused' }) }),
      list_jobs: () => [],
    });
    await renderApp();
    expect($('#status-line').textContent).toBe('2 running · 1 queued · paused');
    expect($('#daemon-state').textContent).toBe('paused');
  });

  it('says idle when nothing runs, and follows daemon:state', async () => {
    fakeIpc({ app_state: () => appState(), list_jobs: () => [] });
    await renderApp();
    expect($('#status-line').textContent).toBe('idle');
    await emitEvent('daemon:state', appState({ status: status({ activeJobs: 1 }) }));
    expect($('#status-line').textContent).toBe('1 running');
  });
});

describe('pause toggle', () => {
  it('pauses a running daemon and shows what pause answered', async () => {
    const ipc = fakeIpc({
      app_state: () => appState(),
      list_jobs: () => [],
      pause: () => status({ state: 'paused' }),
    });
    await renderApp();
    const toggle = $('#pause-toggle') as HTMLButtonElement;
    expect(toggle.textContent).toBe('Pause');
    expect(toggle.disabled).toBe(false);
    fireEvent.click(toggle);
    await waitFor(() => expect($('#pause-toggle').textContent).toBe('Resume'));
    expect(ipc.callsOf('pause')).toHaveLength(1);
    expect(ipc.callsOf('resume')).toHaveLength(0);
    expect($('#daemon-state').textContent).toBe('paused');
    expect($('#status-line').textContent).toBe('idle · paused');
  });

  it('resumes a paused daemon', async () => {
    const ipc = fakeIpc({
      app_state: () => appState({ status: status({ state: 'paused' }) }),
      list_jobs: () => [],
      resume: () => status({ state: 'running' }),
    });
    await renderApp();
    fireEvent.click($('#pause-toggle'));
    await waitFor(() => expect($('#pause-toggle').textContent).toBe('Pause'));
    expect(ipc.callsOf('resume')).toHaveLength(1);
    expect($('#daemon-state').textContent).toBe('running');
  });

  it('is disabled while draining and while disconnected', async () => {
    fakeIpc({ app_state: () => appState({ status: status({ state: 'draining' }) }), list_jobs: () => [] });
    await renderApp();
    expect(($('#pause-toggle') as HTMLButtonElement).disabled).toBe(true);
    expect(($('#drain') as HTMLButtonElement).disabled).toBe(true);
    await emitEvent('daemon:state', appState({ health: { state: 'daemon_stopped', reason: null }, status: null }));
    expect(($('#pause-toggle') as HTMLButtonElement).disabled).toBe(true);
    expect($('#daemon-state').textContent).toBe('offline');
  });

  it('shows a failure as the error sentence', async () => {
    fakeIpc({
      app_state: () => appState(),
      list_jobs: () => [],
      pause: rejectWith({ code: 'daemon_unavailable', message: 'ephemerd is not running.' }),
    });
    await renderApp();
    fireEvent.click($('#pause-toggle'));
    const error = await waitFor(() => $('.daemon-controls .error'));
    expect(error.dataset.code).toBe('daemon_unavailable');
    expect(error.textContent).toBe('ephemerd is not running.');
  });
});

describe('drain', () => {
  it('sends the timeout in seconds', async () => {
    const ipc = fakeIpc({
      app_state: () => appState(),
      list_jobs: () => [],
      drain: () => status({ state: 'draining', drainDeadline: '2025-11-25T11:00:00Z' }),
    });
    await renderApp();
    expect(document.querySelector('#drain-confirm')).toBeNull();
    fireEvent.click($('#drain'));
    fireEvent.input($('#drain-timeout'), { target: { value: '15' } });
    fireEvent.click($('#drain-confirm'));
    await waitFor(() => expect($('#daemon-state').textContent).toBe('draining'));
    expect(ipc.callsOf('drain')).toEqual([{ timeoutSecs: 900 }]);
    expect(document.querySelector('#drain-confirm')).toBeNull();
  });

  it('sends null without a timeout', async () => {
    const ipc = fakeIpc({
      app_state: () => appState(),
      list_jobs: () => [],
      drain: () => status({ state: 'draining' }),
    });
    await renderApp();
    fireEvent.click($('#drain'));
    fireEvent.click($('#drain-confirm'));
    await waitFor(() => expect(ipc.callsOf('drain')).toEqual([{ timeoutSecs: null }]));
  });
});
