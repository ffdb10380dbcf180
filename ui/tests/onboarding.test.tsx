// Onboarding: the three steps follow the daemon, the forges and the test job; finishing.
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { appState, status } from './fixtures';
import { emitEvent, fakeIpc, rejectWith } from './ipc';
import { $, $$, renderApp } from './render';

const fresh = appState({
  onboarded: false,
  health: { state: 'daemon_stopped', reason: null },
  status: null,
});

function done(step: string): boolean {
  return $(`#${step}`).dataset.done === 'true';
}

describe('onboarding', () => {
  it('walks through the steps', async () => {
    const ipc = fakeIpc({
      app_state: () => fresh,
      list_jobs: () => [],
      start_daemon: () => null,
      save_forge: () => ({ name: 'github:octo-org', note: 'Saved.' }),
      run_test_job: () => ({ ok: true, output: 'hello from a container\n', message: 'This computer can run jobs.' }),
      finish_onboarding: () => appState(),
    });
    await renderApp('#/onboarding');
    expect([done('step-daemon'), done('step-forge'), done('step-test')]).toEqual([false, false, false]);

    // Step 1: one #start-daemon on the page, in the step.
    expect($$('#start-daemon')).toHaveLength(1);
    expect($('#step-daemon').contains($('#start-daemon'))).toBe(true);
    expect(($('#run-test-job') as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click($('#start-daemon'));
    await waitFor(() => expect(ipc.callsOf('start_daemon')).toHaveLength(1));
    await emitEvent('daemon:state', appState({ onboarded: false, status: status({ providers: [] }) }));
    expect(done('step-daemon')).toBe(true);
    expect(done('step-forge')).toBe(false);

    // Step 2: the connect form, once.
    expect($$('#connect-forge')).toHaveLength(1);
    fireEvent.input($('#forge-owner'), { target: { value: 'octo-org' } });
    fireEvent.input($('#forge-token'), { target: { value: 'ghp_x' } });
    fireEvent.click($('#forge-save'));
    await waitFor(() => expect(done('step-forge')).toBe(true));

    // Step 3.
    fireEvent.click($('#run-test-job'));
    await waitFor(() => expect(done('step-test')).toBe(true));
    expect($('#test-job-result').textContent).toContain('This computer can run jobs.');
    expect($('#test-job-result').textContent).toContain('hello from a container');

    fireEvent.click($('#finish-onboarding'));
    await waitFor(() => expect(window.location.hash).toBe('#/jobs'));
    expect(ipc.callsOf('finish_onboarding')).toHaveLength(1);
  });

  it('marks the forge step done when a forge is already connected, and shows a failed test job', async () => {
    fakeIpc({
      app_state: () => appState({ onboarded: false }),
      list_jobs: () => [],
      run_test_job: rejectWith({ code: 'daemon_unavailable', message: 'ephemerd is not running.' }),
    });
    await renderApp('#/onboarding');
    expect(done('step-daemon')).toBe(true);
    expect(done('step-forge')).toBe(true);
    fireEvent.click($('#run-test-job'));
    const error = await waitFor(() => $('#test-job-result .error'));
    expect(error.dataset.code).toBe('daemon_unavailable');
    expect(done('step-test')).toBe(false);
  });

  it('offers to install the service from step 1', async () => {
    const ipc = fakeIpc({
      app_state: () => appState({ onboarded: false, mode: 'service', health: { state: 'not_installed', reason: null }, status: null }),
      list_jobs: () => [],
      install_daemon: () => null,
    });
    await renderApp('#/onboarding');
    expect($$('#install-daemon')).toHaveLength(1);
    fireEvent.click($('#install-daemon'));
    await waitFor(() => expect(ipc.callsOf('install_daemon')).toHaveLength(1));
  });
});
