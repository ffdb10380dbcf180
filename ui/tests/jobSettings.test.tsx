// Settings → Jobs: loaded from the daemon, validated by field, and saved as exactly what was entered
// (profile names carried, so their limits in the config file stay with them).
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { JobSettings } from '../src/api';
import { appState } from './fixtures';
import { emitEvent, fakeIpc, rejectWith, type Handler } from './ipc';
import { $, $$, renderApp } from './render';

const loaded: JobSettings = {
  maxConcurrent: 2,
  defaultImage: 'docker.io/library/buildpack-deps:bookworm-scm',
  profiles: [{ name: 'big', labels: ['big', 'x64'], image: 'ghcr.io/o/big:1' }],
  configPath: '/home/me/.config/ephemerd/config.toml',
  webhookListen: '',
};

async function openJobs(handlers: Record<string, Handler> = {}, state = appState()) {
  const ipc = fakeIpc({ app_state: () => state, list_jobs: () => [], get_job_settings: () => loaded, ...handlers });
  await renderApp('#/settings');
  await waitFor(() => expect(document.querySelector('#jobs-max')).not.toBeNull());
  return ipc;
}

function type(el: HTMLElement, value: string) {
  fireEvent.input(el, { target: { value } });
}

describe('job settings', () => {
  it('shows what the daemon runs with', async () => {
    await openJobs();
    expect(($('#jobs-max') as HTMLInputElement).value).toBe('2');
    expect(($('#jobs-image') as HTMLInputElement).value).toBe(loaded.defaultImage);
    expect(($('.profile[data-index="0"] .profile-labels') as HTMLInputElement).value).toBe('big, x64');
    expect(($('.profile[data-index="0"] .profile-image') as HTMLInputElement).value).toBe('ghcr.io/o/big:1');
    expect($('#job-settings').textContent).toContain('/home/me/.config/ephemerd/config.toml');
  });

  it('saves exactly what was entered and shows the daemon’s note', async () => {
    const ipc = await openJobs({
      save_job_settings: ({ settings }) => ({ settings, note: 'Saved in /c.toml and in use now.' }),
    });
    type($('#jobs-max'), '4');
    type($('#jobs-image'), ' debian:bookworm ');
    fireEvent.click($('#profile-add'));
    type($('.profile[data-index="1"] .profile-labels'), 'gpu, cuda,');
    type($('#jobs-webhook'), ' 127.0.0.1:8089 ');
    fireEvent.click($('#jobs-save'));
    await waitFor(() => expect($('#jobs-save-result').textContent).toBe('Saved in /c.toml and in use now.'));
    const expected: JobSettings = {
      maxConcurrent: 4,
      defaultImage: 'debian:bookworm',
      profiles: [
        { name: 'big', labels: ['big', 'x64'], image: 'ghcr.io/o/big:1' },
        { name: '', labels: ['gpu', 'cuda'], image: '' },
      ],
      configPath: loaded.configPath,
      webhookListen: '127.0.0.1:8089',
    };
    expect(ipc.callsOf('save_job_settings')).toEqual([{ settings: expected }]);
  });

  it('removes a row', async () => {
    const ipc = await openJobs({ save_job_settings: ({ settings }) => ({ settings, note: 'ok' }) });
    fireEvent.click($('.profile[data-index="0"] .profile-remove'));
    expect($$('.profile')).toHaveLength(0);
    fireEvent.click($('#jobs-save'));
    await waitFor(() => expect(ipc.callsOf('save_job_settings')).toHaveLength(1));
    expect((ipc.callsOf('save_job_settings')[0].settings as JobSettings).profiles).toEqual([]);
  });

  it('validates before sending, next to the fields', async () => {
    const ipc = await openJobs({ save_job_settings: () => ({ settings: null, note: '' }) });
    type($('#jobs-max'), '0');
    type($('#jobs-image'), ' ');
    fireEvent.click($('#profile-add'));
    type($('.profile[data-index="0"] .profile-labels'), 'two words');
    type($('#jobs-webhook'), 'localhost');
    fireEvent.click($('#jobs-save'));
    expect($('#jobs-webhook-error').textContent).toContain('IP address and port');
    expect($('#jobs-max-error').textContent).toContain('from 1 to 256');
    expect($('#jobs-image-error').textContent).toContain('Name an image');
    expect($('.profile[data-index="0"] .profile-error').textContent).toContain('"two words" has a space');
    expect($('.profile[data-index="1"] .profile-error').textContent).toContain('at least one label');
    expect(ipc.callsOf('save_job_settings')).toEqual([]);
  });

  it('shows the daemon refusing, in its words', async () => {
    await openJobs({
      save_job_settings: rejectWith({ code: 'invalid_field', message: 'default_image: invalid image reference' }),
    });
    type($('#jobs-image'), 'UPPER:case:bad');
    fireEvent.click($('#jobs-save'));
    const error = await waitFor(() => $('#jobs-error'));
    expect(error.dataset.code).toBe('invalid_field');
    expect(error.textContent).toContain('invalid image reference');
  });

  it('keeps unsaved edits when the daemon reconnects, and clears row errors when a row goes', async () => {
    const ipc = await openJobs();
    type($('#jobs-max'), '7');
    fireEvent.click($('#profile-add'));
    fireEvent.click($('#jobs-save'));
    expect($('.profile[data-index="1"] .profile-error').textContent).toContain('at least one label');
    fireEvent.click($('.profile[data-index="0"] .profile-remove'));
    expect(document.querySelector('.profile-error')).toBeNull();
    await emitEvent('daemon:state', appState({ health: { state: 'daemon_stopped', reason: null }, status: null }));
    await emitEvent('daemon:state', appState());
    await new Promise((r) => setTimeout(r, 10));
    expect(($('#jobs-max') as HTMLInputElement).value).toBe('7');
    expect(ipc.callsOf('get_job_settings')).toHaveLength(1);
  });

  it('waits for the daemon, and loads once it is connected', async () => {
    const stopped = appState({ health: { state: 'daemon_stopped', reason: null }, status: null });
    const ipc = fakeIpc({ app_state: () => stopped, list_jobs: () => [], get_job_settings: () => loaded });
    await renderApp('#/settings');
    await waitFor(() => expect($('#job-settings').textContent).toContain('Shown when ephemerd is running.'));
    expect(ipc.callsOf('get_job_settings')).toEqual([]);
    await emitEvent('daemon:state', appState());
    await waitFor(() => expect(($('#jobs-max') as HTMLInputElement).value).toBe('2'));
  });
});
