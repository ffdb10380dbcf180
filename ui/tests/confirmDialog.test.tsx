// The in-app confirm dialog on its own: what it shows, where focus goes, the keys, and that
// every question is answered exactly once.
import { fireEvent, render, waitFor } from '@testing-library/preact';
import { describe, expect, it } from 'vitest';
import { ConfirmProvider, useConfirm, type Confirm } from '../src/components/ConfirmDialog';
import { $ } from './render';

function setup() {
  let confirm: Confirm | null = null;
  function Asker() {
    confirm = useConfirm();
    return (
      <button type="button" id="asker">
        Ask
      </button>
    );
  }
  const result = render(
    <ConfirmProvider>
      <Asker />
    </ConfirmProvider>,
  );
  return { ...result, ask: (q = 'Delete it?', ok = 'Delete') => confirm!(q, ok) };
}

const closed = () => expect(document.querySelector('#confirm-dialog')).toBeNull();

describe('confirm dialog', () => {
  it('shows the question and labels, focuses Cancel, and resolves true on OK', async () => {
    const { ask } = setup();
    $('#asker').focus();
    const answer = ask('Delete the thing?', 'Delete thing');
    const dialog = await waitFor(() => $('#confirm-dialog'));
    expect(dialog.getAttribute('role')).toBe('dialog');
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect($('#confirm-question').textContent).toBe('Delete the thing?');
    expect($('#confirm-ok').textContent).toBe('Delete thing');
    expect($('#confirm-cancel').textContent).toBe('Cancel');
    expect(document.activeElement).toBe($('#confirm-cancel'));
    fireEvent.click($('#confirm-ok'));
    await expect(answer).resolves.toBe(true);
    await waitFor(closed);
    expect(document.activeElement).toBe($('#asker'));
  });

  it('resolves false on Cancel, Escape and a click beside it', async () => {
    const { ask } = setup();
    let answer = ask();
    fireEvent.click(await waitFor(() => $('#confirm-cancel')));
    await expect(answer).resolves.toBe(false);
    await waitFor(closed);

    answer = ask();
    await waitFor(() => $('#confirm-dialog'));
    fireEvent.keyDown(document.activeElement!, { key: 'Escape' });
    await expect(answer).resolves.toBe(false);
    await waitFor(closed);

    answer = ask();
    fireEvent.click(await waitFor(() => $('#confirm-dialog')));
    await expect(answer).resolves.toBe(false);
    await waitFor(closed);
  });

  it('confirms with Enter, but not with a held one', async () => {
    const { ask } = setup();
    const answer = ask();
    await waitFor(() => $('#confirm-dialog'));
    let settled = false;
    void answer.then(() => (settled = true));
    fireEvent.keyDown(document.activeElement!, { key: 'Enter', repeat: true });
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    fireEvent.keyDown(document.activeElement!, { key: 'Enter' });
    await expect(answer).resolves.toBe(true);
    await waitFor(closed);
  });

  it('keeps Tab on its two buttons', async () => {
    const { ask } = setup();
    void ask();
    await waitFor(() => $('#confirm-dialog'));
    fireEvent.keyDown(document.activeElement!, { key: 'Tab' });
    expect(document.activeElement).toBe($('#confirm-ok'));
    fireEvent.keyDown(document.activeElement!, { key: 'Tab', shiftKey: true });
    expect(document.activeElement).toBe($('#confirm-cancel'));
  });

  it('answers a question false when a new one replaces it or the asker goes away', async () => {
    const { ask, unmount } = setup();
    const first = ask('First?', 'One');
    await waitFor(() => $('#confirm-dialog'));
    const second = ask('Second?', 'Two');
    await expect(first).resolves.toBe(false);
    await waitFor(() => expect($('#confirm-question').textContent).toBe('Second?'));
    unmount();
    await expect(second).resolves.toBe(false);
    closed();
  });
});
