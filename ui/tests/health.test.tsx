// The health banner, its actions, the window's routing and the tray's navigate event.
import { fireEvent, render, screen, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { AppState, HealthState } from '../src/api';
import { App } from '../src/components/App';
import { appState } from './fixtures';
import { emitEvent, fakeIpc, rejectWith } from './ipc';
import { $, renderApp } from './render';

function disconnected(state: HealthState, reason: string | null = null): AppState {
  return appState({ health: { state, reason }, status: null });
}

describe('health banner', () => {
  it('says "Connecting…" until app_state answers', async () => {
    let answer: (s: AppState) => void = () => undefined;
    fakeIpc({ app_state: () => new Promise<AppState>((r) => (answer = r)), list_jobs: () => [] });
    render(<App />);
    expect($('#health').dataset.state).toBe('connecting');
    expect($('#health').textContent).toContain('Connecting…');
    answer(appState());
    await waitFor(() => expect($('#health').dataset.state).toBe('connected'));
  });

  it('shows version and status line when connected', async () => {
    fakeIpc({ app_state: () => appState(), list_jobs: () => [] });
    await renderApp();
    expect($('#health').textContent).toContain('ephemerd 0.3.0');
    expect($('#status-line').textContent).toBe('idle');
  });

  it('offers #start-daemon when the daemon is stopped, calling start_daemon', async () => {
    const ipc = fakeIpc({ app_state: () => disconnected('daemon_stopped'), list_jobs: () => [], start_daemon: () => null });
    await renderApp();
    expect($('#health').dataset.state).toBe('daemon_stopped');
    expect(document.querySelector('#install-daemon')).toBeNull();
    fireEvent.click($('#start-daemon'));
    await waitFor(() => expect(ipc.callsOf('start_daemon')).toHaveLength(1));
  });

  it('offers #install-daemon when the service is not installed, calling install_daemon', async () => {
    const ipc = fakeIpc({
      app_state: () => disconnected('not_installed'),
      list_jobs: () => [],
      install_daemon: () => null,
    });
    await renderApp();
    expect(document.querySelector('#start-daemon')).toBeNull();
    fireEvent.click($('#install-daemon'));
    await waitFor(() => expect(ipc.callsOf('install_daemon')).toHaveLength(1));
    expect(ipc.callsOf('start_daemon')).toHaveLength(0);
  });

  it('shows a failed start as the error sentence with its code', async () => {
    fakeIpc({
      app_state: () => disconnected('daemon_stopped'),
      list_jobs: () => [],
      start_daemon: rejectWith({ code: 'internal', message: 'The daemon binary is missing.' }),
    });
    await renderApp();
    fireEvent.click($('#start-daemon'));
    const error = await waitFor(() => $('#health .error'));
    expect(error.textContent).toBe('The daemon binary is missing.');
    expect(error.dataset.code).toBe('internal');
  });

  it('gives the reason when unreachable, and says the daemon is starting', async () => {
    fakeIpc({ app_state: () => disconnected('unreachable', 'permission denied on /run/ephemerd.sock'), list_jobs: () => [] });
    await renderApp();
    expect($('#health').dataset.state).toBe('unreachable');
    expect($('#health').textContent).toContain('permission denied on /run/ephemerd.sock');
    expect(document.querySelector('#health button')).toBeNull();

    await emitEvent('daemon:state', disconnected('starting'));
    expect($('#health').dataset.state).toBe('starting');
    expect($('#health').textContent).toContain('Starting the daemon…');
  });

  it('follows daemon:state from stopped to connected', async () => {
    fakeIpc({ app_state: () => disconnected('daemon_stopped'), list_jobs: () => [] });
    await renderApp();
    await emitEvent('daemon:state', appState());
    expect($('#health').dataset.state).toBe('connected');
    expect(document.querySelector('#start-daemon')).toBeNull();
  });

  it('shows an app_state failure with a retry', async () => {
    const ipc = fakeIpc({ app_state: rejectWith({ code: 'internal', message: 'Broken.' }), list_jobs: () => [] });
    render(<App />);
    const error = await waitFor(() => $('#health .error'));
    expect(error.dataset.code).toBe('internal');
    ipc.on({ app_state: () => appState() });
    fireEvent.click($('#health-retry'));
    await waitFor(() => expect($('#health').dataset.state).toBe('connected'));
  });
});

describe('routing', () => {
  it('goes where the tray menu says', async () => {
    fakeIpc({ app_state: () => appState(), list_jobs: () => [] });
    await renderApp('#/jobs');
    expect(document.querySelector('#jobs')).not.toBeNull();
    await emitEvent('navigate', '#/settings');
    await waitFor(() => expect(document.querySelector('#settings')).not.toBeNull());
    expect(document.querySelector('#jobs')).toBeNull();
  });

  it('opens onboarding when not onboarded', async () => {
    fakeIpc({ app_state: () => appState({ onboarded: false }), list_jobs: () => [] });
    await renderApp('');
    await waitFor(() => expect(document.querySelector('#onboarding')).not.toBeNull());
    expect(window.location.hash).toBe('#/onboarding');
  });

  it('has the nav links', async () => {
    fakeIpc({ app_state: () => appState(), list_jobs: () => [] });
    await renderApp('#/settings');
    expect($('#nav-jobs').getAttribute('href')).toBe('#/jobs');
    expect($('#nav-settings').getAttribute('href')).toBe('#/settings');
    expect(screen.getByText('Settings').getAttribute('aria-current')).toBe('page');
  });
});
