// Test setup: every test starts from an empty DOM, no Tauri mocks or spies, the default
// route, and the window labelled "main".
import { cleanup } from '@testing-library/preact';
import { clearMocks, mockWindows } from '@tauri-apps/api/mocks';
import { afterEach, beforeEach, vi } from 'vitest';

beforeEach(() => {
  window.location.hash = '';
  mockWindows('main');
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.restoreAllMocks();
});
