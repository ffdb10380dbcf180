// The connect-a-forge form: the exact ForgeInput it sends, validation, test results, saving.
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { ForgeInput, TestResult } from '../src/api';
import { appState } from './fixtures';
import { fakeIpc, rejectWith, type Handler } from './ipc';
import { $, renderApp } from './render';

async function openForm(handlers: Record<string, Handler> = {}) {
  const ipc = fakeIpc({ app_state: () => appState(), list_jobs: () => [], ...handlers });
  await renderApp('#/settings');
  await waitFor(() => expect(document.querySelector('#connect-forge')).not.toBeNull());
  return ipc;
}

function type(selector: string, value: string) {
  fireEvent.input($(selector), { target: { value } });
}

describe('connect a forge', () => {
  it('tests a GitHub token forge with exactly the fields entered', async () => {
    const ipc = await openForm({ test_forge: (): TestResult => ({ ok: true, missing: [], message: 'Signed in as octo-bot.' }) });
    expect($('label[for="forge-url"]').textContent).toBe('GitHub Enterprise API URL (leave empty for github.com)');
    type('#forge-owner', ' octo-org ');
    type('#forge-repos', 'app, web,, ');
    type('#forge-token', 'ghp_secret');
    type('#forge-poll', '30s');
    type('#forge-labels', 'gpu, , cuda');
    type('#forge-image', ' ghcr.io/octo-org/ci:1 ');
    expect(document.querySelector('#forge-webhook-secret')).toBeNull();
    fireEvent.click($('#forge-webhook'));
    expect($('#forge-webhook-secret').getAttribute('type')).toBe('password');
    expect($('#forge-webhook-secret').closest('.field')!.textContent).toContain('/hooks/github/octo-org');
    type('#forge-webhook-secret', ' hook-secret-1 ');
    fireEvent.click($('#forge-test'));
    await waitFor(() => expect($('#forge-test-result').textContent).toContain('Connection works'));
    expect($('#forge-test-result').textContent).toContain('Signed in as octo-bot.');
    const expected: ForgeInput = {
      kind: 'github',
      url: '',
      owner: 'octo-org',
      repos: ['app', 'web'],
      auth: { type: 'token', token: 'ghp_secret' },
      pollInterval: '30s',
      webhook: true,
      labels: ['gpu', 'cuda'],
      image: 'ghcr.io/octo-org/ci:1',
      webhookSecret: 'hook-secret-1',
    };
    expect(ipc.callsOf('test_forge')).toEqual([{ forge: expected }]);
  });

  it('saves a GitHub App forge', async () => {
    const ipc = await openForm({ save_forge: () => ({ name: 'github:octo-org', note: 'Applied.' }) });
    type('#forge-url', 'https://ghe.example.com/api/v3');
    type('#forge-owner', 'octo-org');
    expect(document.querySelector('#forge-app-id')).toBeNull();
    fireEvent.click($('#auth-app'));
    expect(document.querySelector('#forge-token')).toBeNull();
    type('#forge-app-id', '12345');
    type('#forge-installation-id', '678');
    type('#forge-key-file', '/home/me/app.pem');
    fireEvent.click($('#forge-save'));
    await waitFor(() => expect($('#forge-save-result').textContent).toContain('Applied.'));
    const expected: ForgeInput = {
      kind: 'github',
      url: 'https://ghe.example.com/api/v3',
      owner: 'octo-org',
      repos: [],
      auth: { type: 'app', appId: 12345, installationId: 678, keyFile: '/home/me/app.pem' },
      pollInterval: '10s',
      webhook: false,
      labels: [],
      image: '',
      webhookSecret: '',
    };
    expect(ipc.callsOf('save_forge')).toEqual([{ forge: expected }]);
  });

  it('asks other kinds for their own secret and URL', async () => {
    const ipc = await openForm({ test_forge: () => ({ ok: true, missing: [], message: '' }) });
    fireEvent.change($('#forge-kind'), { target: { value: 'gitlab' } });
    expect($('label[for="forge-url"]').textContent).toBe('Instance URL');
    expect($('label[for="forge-token"]').textContent).toBe('Runner token');
    expect(document.querySelector('#forge-owner')).toBeNull();
    expect(document.querySelector('#auth-app')).toBeNull();

    fireEvent.change($('#forge-kind'), { target: { value: 'forgejo' } });
    expect($('label[for="forge-token"]').textContent).toBe('Registration token');
    expect(document.querySelector('#forge-owner')).not.toBeNull();

    fireEvent.change($('#forge-kind'), { target: { value: 'woodpecker' } });
    expect($('label[for="forge-url"]').textContent).toBe('Server URL');
    expect($('label[for="forge-token"]').textContent).toBe('Agent secret');
    type('#forge-url', 'https://ci.example.com');
    type('#forge-token', 'agent-secret');
    type('#forge-poll', '');
    fireEvent.click($('#forge-test'));
    await waitFor(() => expect(ipc.callsOf('test_forge')).toHaveLength(1));
    expect(ipc.callsOf('test_forge')[0].forge).toEqual({
      kind: 'woodpecker',
      url: 'https://ci.example.com',
      owner: '',
      repos: [],
      auth: { type: 'token', token: 'agent-secret' },
      pollInterval: null,
      webhook: false,
      labels: [],
      image: '',
      webhookSecret: '',
    });
  });

  it('validates before sending, with messages next to the fields', async () => {
    const ipc = await openForm({ test_forge: () => ({ ok: true, missing: [], message: '' }) });
    type('#forge-url', 'not a url');
    fireEvent.click($('#forge-test'));
    expect($('#forge-url-error').textContent).toContain('web address');
    expect($('#forge-owner-error').textContent).toContain('user or organization');
    expect($('#forge-token-error').textContent).toContain('personal access token');
    type('#forge-labels', 'two words');
    type('#forge-image', 'debian bookworm');
    fireEvent.click($('#forge-test'));
    expect($('#forge-labels-error').textContent).toContain('"two words" has a space');
    expect($('#forge-image-error').textContent).toContain('no spaces');
    fireEvent.click($('#forge-webhook'));
    type('#forge-webhook-secret', 'short');
    fireEvent.click($('#forge-test'));
    expect($('#forge-webhook-secret-error').textContent).toContain('8 characters');
    fireEvent.click($('#auth-app'));
    type('#forge-app-id', 'abc');
    fireEvent.click($('#forge-save'));
    expect($('#forge-app-id-error').textContent).toContain('App ID');
    expect($('#forge-installation-id-error')).toBeTruthy();
    expect($('#forge-key-file-error')).toBeTruthy();
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.calls.filter((c) => c.cmd === 'test_forge' || c.cmd === 'save_forge')).toEqual([]);
  });

  it('lists the missing permissions of a failed test', async () => {
    await openForm({
      test_forge: (): TestResult => ({
        ok: false,
        missing: ['Self-hosted runners: read and write', 'Actions: read'],
        message: 'The token cannot register runners for octo-org.',
      }),
    });
    type('#forge-owner', 'octo-org');
    type('#forge-token', 'ghp_x');
    fireEvent.click($('#forge-test'));
    await waitFor(() => expect(document.querySelectorAll('#forge-test-result li.missing')).toHaveLength(2));
    expect($('#forge-test-result').textContent).toContain('The token cannot register runners for octo-org.');
    expect($('#forge-test-result').textContent).not.toContain('Connection works');
    expect(document.querySelector('#forge-test-result li.missing')?.textContent).toBe('Self-hosted runners: read and write');
  });

  it('shows why a save was refused, keeping what was entered', async () => {
    const message = 'The system keychain is not available, so the token cannot be stored safely.';
    await openForm({ save_forge: rejectWith({ code: 'keyring_unavailable', message }) });
    type('#forge-owner', 'octo-org');
    type('#forge-token', 'ghp_x');
    fireEvent.click($('#forge-save'));
    const error = await waitFor(() => $('#forge-save-result .error'));
    expect(error.dataset.code).toBe('keyring_unavailable');
    expect(error.textContent).toBe(message);
    expect(($('#forge-token') as HTMLInputElement).value).toBe('ghp_x');
  });

  it('clears the secret once saved and never shows it', async () => {
    const ipc = await openForm({
      save_forge: () => ({ name: 'github:octo-org', note: 'Token stored in the keychain.' }),
    });
    type('#forge-owner', 'octo-org');
    type('#forge-token', 'ghp_topsecret');
    fireEvent.click($('#forge-save'));
    await waitFor(() => expect($('#forge-save-result').textContent).toContain('github:octo-org'));
    expect(($('#forge-token') as HTMLInputElement).value).toBe('');
    expect(document.body.innerHTML).not.toContain('ghp_topsecret');
    // The saved forge shows up: the list is asked again.
    await waitFor(() => expect(ipc.callsOf('app_state').length).toBeGreaterThanOrEqual(2));
  });
});
