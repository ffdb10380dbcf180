// The window's header: navigation (#nav-jobs, #nav-settings), the daemon controls and, below,
// the health banner.
import type { Route } from '../router';
import { DaemonControls } from './DaemonControls';
import { HealthBanner } from './HealthBanner';

export function Header({ route }: { route: Route }) {
  const onJobs = route.page === 'jobs' || route.page === 'job';
  return (
    <header class="app-header">
      <div class="bar">
        <span class="brand">ephemerd</span>
        <nav>
          <a id="nav-jobs" href="#/jobs" class={onJobs ? 'active' : undefined} aria-current={onJobs ? 'page' : undefined}>
            Jobs
          </a>
          <a
            id="nav-settings"
            href="#/settings"
            class={route.page === 'settings' ? 'active' : undefined}
            aria-current={route.page === 'settings' ? 'page' : undefined}
          >
            Settings
          </a>
        </nav>
        <DaemonControls />
      </div>
      <HealthBanner withActions={route.page !== 'onboarding'} />
    </header>
  );
}
