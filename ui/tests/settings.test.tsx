// Settings: the connected forges (credential words, replace, remove) and the app settings.
import { fireEvent, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import type { AppState, ForgeView } from '../src/api';
import { appState, provider, status } from './fixtures';
import { emitEvent, fakeIpc, rejectWith, type Handler } from './ipc';
import { $, $$, renderApp } from './render';

const providers = [
  provider({ name: 'github:octo-org', credential: 'keyring', discovery: 'webhook' }),
  provider({
    name: 'forgejo:me',
    kind: 'forgejo',
    url: 'https://codeberg.org',
    credential: 'environment',
    connected: false,
    lastError: 'The token was rejected (401).',
  }),
  provider({ name: 'gitlab:ci', kind: 'gitlab', credential: 'missing' }),
];

async function openSettings(handlers: Record<string, Handler> = {}, state: AppState = appState({ status: status({ providers }) })) {
  const ipc = fakeIpc({ app_state: () => state, list_jobs: () => [], ...handlers });
  await renderApp('#/settings');
  await waitFor(() => expect(document.querySelector('#settings')).not.toBeNull());
  return ipc;
}

describe('connected forges', () => {
  it('lists each forge with where its credential is kept', async () => {
    await openSettings();
    expect($$('#forges li[data-forge]').map((li) => li.dataset.forge)).toEqual(['github:octo-org', 'forgejo:me', 'gitlab:ci']);
    expect($('li[data-forge="github:octo-org"] .credential').textContent).toBe('Stored in keychain');
    expect($('li[data-forge="forgejo:me"] .credential').textContent).toBe('From environment');
    expect($('li[data-forge="gitlab:ci"] .credential').textContent).toBe('Missing: add a token');
    expect($('li[data-forge="forgejo:me"]').textContent).toContain('The token was rejected (401).');
    expect($('li[data-forge="forgejo:me"] .connection').textContent).toBe('Not connected');
    expect($('li[data-forge="github:octo-org"]').textContent).toContain('webhook');
    expect(document.querySelector('li[data-forge="github:octo-org"] .replace-secret')).toBeNull();
  });

  it('replaces a saved token through set_credential', async () => {
    const ipc = await openSettings({ set_credential: () => ({ note: 'New token stored in the keychain.' }) });
    const item = '[data-forge="github:octo-org"]';
    fireEvent.click($(`${item} .replace`));
    fireEvent.input($(`${item} .replace-secret`), { target: { value: 'ghp_new' } });
    fireEvent.click($(`${item} .replace-save`));
    await waitFor(() => expect($(item).textContent).toContain('New token stored in the keychain.'));
    expect(ipc.callsOf('set_credential')).toEqual([{ provider: 'github:octo-org', secret: 'ghp_new' }]);
    expect(document.querySelector(`${item} .replace-secret`)).toBeNull();
  });

  it('shows a refused replacement', async () => {
    await openSettings({
      set_credential: rejectWith({ code: 'keyring_unavailable', message: 'No keychain.' }),
    });
    const item = '[data-forge="gitlab:ci"]';
    fireEvent.click($(`${item} .replace`));
    fireEvent.input($(`${item} .replace-secret`), { target: { value: 'glrt-x' } });
    fireEvent.click($(`${item} .replace-save`));
    const error = await waitFor(() => $(`${item} .error`));
    expect(error.dataset.code).toBe('keyring_unavailable');
  });

  it('removes a forge after OK in the dialog, and the list follows the daemon', async () => {
    let current = appState({ status: status({ providers }) });
    const ipc = await openSettings(
      {
        app_state: () => current,
        remove_forge: ({ name }) => {
          current = appState({ status: status({ providers: providers.filter((p) => p.name !== name) }) });
          return null;
        },
      },
      current,
    );
    fireEvent.click($('[data-forge="forgejo:me"] .remove'));
    const dialog = await waitFor(() => $('#confirm-dialog'));
    expect(dialog.textContent).toContain('Remove forgejo:me?');
    expect($('#confirm-ok').textContent).toBe('Remove forge');
    expect(document.activeElement).toBe($('#confirm-cancel'));
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('remove_forge')).toEqual([]);
    fireEvent.click($('#confirm-ok'));
    await waitFor(() => expect(ipc.callsOf('remove_forge')).toEqual([{ name: 'forgejo:me' }]));
    expect(document.querySelector('#confirm-dialog')).toBeNull();
    await waitFor(() =>
      expect($$('#forges li[data-forge]').map((li) => li.dataset.forge)).toEqual(['github:octo-org', 'gitlab:ci']),
    );
    await emitEvent('daemon:state', appState({ status: status({ providers: [providers[0]] }) }));
    expect($$('#forges li[data-forge]').map((li) => li.dataset.forge)).toEqual(['github:octo-org']);
  });

  it('keeps a forge when the dialog is cancelled', async () => {
    const ipc = await openSettings({ remove_forge: () => null });
    fireEvent.click($('[data-forge="forgejo:me"] .remove'));
    fireEvent.click(await waitFor(() => $('#confirm-cancel')));
    await waitFor(() => expect(document.querySelector('#confirm-dialog')).toBeNull());
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('remove_forge')).toEqual([]);
    expect($$('#forges li[data-forge]')).toHaveLength(3);
  });

  it('keeps a forge when Escape closes the dialog', async () => {
    const ipc = await openSettings({ remove_forge: () => null });
    fireEvent.click($('[data-forge="forgejo:me"] .remove'));
    await waitFor(() => $('#confirm-dialog'));
    fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    await waitFor(() => expect(document.querySelector('#confirm-dialog')).toBeNull());
    await new Promise((r) => setTimeout(r, 10));
    expect(ipc.callsOf('remove_forge')).toEqual([]);
  });
});

describe('editing a forge', () => {
  const view: ForgeView = {
    kind: 'github',
    url: '',
    owner: 'octo-org',
    repos: ['app', 'web'],
    auth: null,
    pollInterval: '30s',
    webhook: true,
    labels: ['gpu'],
    image: 'ghcr.io/octo-org/ci:1',
  };

  it('opens the saved settings and saves them with the stored token kept', async () => {
    const ipc = await openSettings({
      get_forge: () => view,
      save_forge: () => ({ name: 'github:octo-org', note: 'saved, with the token stored before' }),
    });
    expect(document.querySelector('[data-forge="gitlab:ci"] .edit')).toBeNull();
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    await waitFor(() => expect($('#connect-forge').dataset.editing).toBe('octo-org'));
    expect(ipc.callsOf('get_forge')).toEqual([{ name: 'github:octo-org' }]);
    expect($('#settings').textContent).toContain('Edit github:octo-org');
    expect(($('#forge-owner') as HTMLInputElement).readOnly).toBe(true);
    expect(($('#forge-kind') as HTMLSelectElement).disabled).toBe(true);
    expect(($('#forge-repos') as HTMLInputElement).value).toBe('app, web');
    expect(($('#forge-token') as HTMLInputElement).value).toBe('');
    expect($('#forge-token').closest('.field')!.textContent).toContain('Leave empty to keep the stored one.');
    expect(($('#forge-webhook') as HTMLInputElement).checked).toBe(true);
    fireEvent.input($('#forge-labels'), { target: { value: 'gpu, big' } });
    fireEvent.click($('#forge-save'));
    await waitFor(() => expect($('#forge-save-result').textContent).toContain('with the token stored before'));
    expect(ipc.callsOf('save_forge')).toEqual([
      {
        forge: {
          kind: 'github',
          url: '',
          owner: 'octo-org',
          repos: ['app', 'web'],
          auth: null,
          pollInterval: '30s',
          webhook: true,
          labels: ['gpu', 'big'],
          image: 'ghcr.io/octo-org/ci:1',
          webhookSecret: '',
        },
      },
    ]);
    fireEvent.click($('#forge-cancel'));
    await waitFor(() => expect($('#settings').textContent).toContain('Connect a forge'));
    expect($('#connect-forge').dataset.editing).toBeUndefined();
    expect(($('#forge-owner') as HTMLInputElement).value).toBe('');
  });

  it('asks for a token when a forge that used an App switches to one', async () => {
    const app: ForgeView = { ...view, auth: { type: 'app', appId: 7, installationId: 9, keyFile: '/k.pem' } };
    const ipc = await openSettings({ get_forge: () => app, save_forge: () => ({ name: 'github:octo-org', note: '' }) });
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    await waitFor(() => expect(($('#forge-app-id') as HTMLInputElement).value).toBe('7'));
    fireEvent.click($('#auth-token'));
    expect($('#forge-token').closest('.field')!.textContent).not.toContain('Leave empty');
    fireEvent.click($('#forge-save'));
    expect($('#forge-token-error').textContent).toContain('personal access token');
    expect(ipc.callsOf('save_forge')).toEqual([]);
  });

  it('loads the saved settings afresh when Edit is clicked again', async () => {
    await openSettings({ get_forge: () => view });
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    await waitFor(() => expect(($('#forge-labels') as HTMLInputElement).value).toBe('gpu'));
    fireEvent.input($('#forge-labels'), { target: { value: 'not saved' } });
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    await waitFor(() => expect(($('#forge-labels') as HTMLInputElement).value).toBe('gpu'));
  });

  it('leaves the edit when the forge is removed', async () => {
    let current = appState({ status: status({ providers }) });
    await openSettings({ app_state: () => current, get_forge: () => view }, current);
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    await waitFor(() => expect($('#connect-forge').dataset.editing).toBe('octo-org'));
    current = appState({ status: status({ providers: providers.slice(1) }) });
    await emitEvent('daemon:state', current);
    await waitFor(() => expect($('#connect-forge').dataset.editing).toBeUndefined());
  });

  it('says why a forge cannot be opened', async () => {
    await openSettings({ get_forge: rejectWith({ code: 'provider_not_found', message: 'No forge github:octo-org.' }) });
    fireEvent.click($('[data-forge="github:octo-org"] .edit'));
    const error = await waitFor(() => $('#forge-edit-error'));
    expect(error.textContent).toBe('No forge github:octo-org.');
  });
});

describe('app settings', () => {
  it('shows and changes the supervision mode', async () => {
    const ipc = await openSettings({ set_mode: ({ mode }) => appState({ mode: mode as AppState['mode'] }) });
    expect(($('#mode-user') as HTMLInputElement).checked).toBe(true);
    expect(($('#mode-service') as HTMLInputElement).checked).toBe(false);
    fireEvent.click($('#mode-service'));
    await waitFor(() => expect(($('#mode-service') as HTMLInputElement).checked).toBe(true));
    expect(ipc.callsOf('set_mode')).toEqual([{ mode: 'service' }]);
    expect($('#mode-note').textContent).toBe('Takes effect the next time the app starts.');
  });

  it('switches notifications and start at login', async () => {
    const ipc = await openSettings({
      set_notifications: ({ enabled }) => appState({ notifications: enabled as boolean }),
      set_start_at_login: ({ enabled }) => appState({ startAtLogin: enabled as boolean, notifications: false }),
    });
    expect(($('#notifications') as HTMLInputElement).checked).toBe(true);
    fireEvent.click($('#notifications'));
    await waitFor(() => expect(ipc.callsOf('set_notifications')).toEqual([{ enabled: false }]));
    await waitFor(() => expect(($('#notifications') as HTMLInputElement).checked).toBe(false));
    fireEvent.click($('#start-at-login'));
    await waitFor(() => expect(ipc.callsOf('set_start_at_login')).toEqual([{ enabled: true }]));
    await waitFor(() => expect(($('#start-at-login') as HTMLInputElement).checked).toBe(true));
  });

  it('shows a refused change', async () => {
    await openSettings({ set_mode: rejectWith({ code: 'not_implemented', message: 'Service mode is not available here.' }) });
    fireEvent.click($('#mode-service'));
    const error = await waitFor(() => $('#app-settings .error'));
    expect(error.dataset.code).toBe('not_implemented');
    expect(error.textContent).toBe('Service mode is not available here.');
  });
});
