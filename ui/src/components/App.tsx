// The one window: header plus the page the hash route names. Follows the tray's `navigate`
// event and sends a user who has not finished onboarding there once. Hosts the confirm dialog.
import { useEffect, useRef } from 'preact/hooks';
import { AppStateProvider, useAppState } from '../appState';
import { useEvent } from '../hooks';
import { navigate, useRoute, type Route } from '../router';
import { ConfirmProvider } from './ConfirmDialog';
import { Header } from './Header';
import { JobDetail } from './JobDetail';
import { JobsPage } from './JobsPage';
import { OnboardingPage } from './OnboardingPage';
import { SettingsPage } from './SettingsPage';

export function App() {
  return (
    <AppStateProvider>
      <ConfirmProvider>
        <Shell />
      </ConfirmProvider>
    </AppStateProvider>
  );
}

function Shell() {
  const route = useRoute();
  const { state } = useAppState();
  useEvent('navigate', navigate);

  // Not onboarded yet: show onboarding once, when the state first arrives.
  const checked = useRef(false);
  useEffect(() => {
    if (!state || checked.current) return;
    checked.current = true;
    if (!state.onboarded) navigate('#/onboarding');
  }, [state]);

  return (
    <div class="app">
      <Header route={route} />
      <main>
        <Page route={route} />
      </main>
    </div>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'jobs':
      return <JobsPage />;
    case 'job':
      return <JobDetail key={route.id} id={route.id} />;
    case 'settings':
      return <SettingsPage />;
    case 'onboarding':
      return <OnboardingPage />;
  }
}
