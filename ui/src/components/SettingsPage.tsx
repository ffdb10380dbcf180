// #settings: the connected forges, the form to connect another, how jobs run, and the app's own settings.
import { useAppState } from '../appState';
import { AppSettings } from './AppSettings';
import { ConnectForgeForm } from './ConnectForgeForm';
import { ForgeList } from './ForgeList';
import { JobSettingsForm } from './JobSettingsForm';

export function SettingsPage() {
  const { state, refresh } = useAppState();
  const providers = state?.health.state === 'connected' ? (state.status?.providers ?? null) : null;
  const refreshSoon = () => void refresh();
  return (
    <section id="settings" class="page">
      <section class="card">
        <h2>Connected forges</h2>
        <ForgeList providers={providers} onChanged={refreshSoon} />
      </section>
      <section class="card">
        <h2>Connect a forge</h2>
        <ConnectForgeForm onSaved={refreshSoon} />
      </section>
      <JobSettingsForm />
      <AppSettings />
    </section>
  );
}
