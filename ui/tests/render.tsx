// Rendering the whole app at a given route, and short DOM queries.
import { render, waitFor } from '@testing-library/preact';
import { expect } from 'vitest';
import { App } from '../src/components/App';

/** Renders the app at `hash` and waits until app_state has answered. */
export async function renderApp(hash = '#/jobs') {
  window.location.hash = hash;
  const result = render(<App />);
  await waitFor(() => expect($('#health').dataset.state).not.toBe('connecting'));
  return result;
}

export function $(selector: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`no element matches ${selector}`);
  return el;
}

export function $$(selector: string): HTMLElement[] {
  return Array.from(document.querySelectorAll<HTMLElement>(selector));
}
