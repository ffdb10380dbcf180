// Build, dev-server and test configuration of the tray app's web UI.
// Run from the repository root: `vite ui`, `vite build ui`, `vitest run --root ui`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Preact's automatic JSX runtime, compiled by Vite's own transformer (no plugin).
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  // Tauri serves the built files itself; in dev it loads this fixed address (devUrl).
  clearScreen: false,
  // Caches go to the root node_modules (git-ignored), not to a ui/node_modules.
  cacheDir: '../node_modules/.vite',
  server: { port: 5173, strictPort: true },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebView2 (Windows) and WebKitGTK / WKWebView (Linux, macOS).
    target: ['es2021', 'chrome105', 'safari15'],
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.test.{ts,tsx}'],
    setupFiles: ['tests/setup.ts'],
    // One DOM per worker instead of one per file: tests/setup.ts resets it between tests,
    // and starting jsdom dominated the run time.
    isolate: false,
  },
});
