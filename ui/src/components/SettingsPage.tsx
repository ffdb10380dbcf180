// #settings: the connected forges (each can be edited in the form below), the form to connect
// another, how jobs run, and the app's own settings.
import { useEffect, useState } from 'preact/hooks';
import { getForge, type UiError } from '../api';
import { useAppState } from '../appState';
import { fromView, type ForgeFields } from '../forgeForm';
import { AppSettings } from './AppSettings';
import { ConnectForgeForm } from './ConnectForgeForm';
import { ErrorMessage } from './ErrorMessage';
import { ForgeList } from './ForgeList';
import { JobSettingsForm } from './JobSettingsForm';

export function SettingsPage() {
  const { state, refresh } = useAppState();
  const providers = state?.health.state === 'connected' ? (state.status?.providers ?? null) : null;
  const refreshSoon = () => void refresh();
  // `opened` counts Edit clicks: clicking Edit again loads the saved settings afresh.
  const [editing, setEditing] = useState<{ name: string; fields: ForgeFields; opened: number } | null>(null);
  const [editError, setEditError] = useState<UiError | null>(null);

  // A forge removed while being edited: back to connecting one.
  const gone = editing !== null && providers !== null && !providers.some((p) => p.name === editing.name);
  useEffect(() => {
    if (gone) setEditing(null);
  }, [gone]);

  async function edit(name: string) {
    setEditError(null);
    try {
      const fields = fromView(await getForge(name));
      setEditing((prev) => ({ name, fields, opened: (prev?.opened ?? 0) + 1 }));
      document.querySelector('#connect-forge')?.scrollIntoView?.({ block: 'start' });
    } catch (e) {
      setEditError(e as UiError);
    }
  }

  return (
    <section id="settings" class="page">
      <section class="card">
        <h2>Connected forges</h2>
        <ForgeList providers={providers} onChanged={refreshSoon} onEdit={(name) => void edit(name)} />
        <ErrorMessage error={editError} id="forge-edit-error" />
      </section>
      <section class="card">
        <h2>{editing ? `Edit ${editing.name}` : 'Connect a forge'}</h2>
        {editing ? (
          <ConnectForgeForm
            key={`${editing.name}#${editing.opened}`}
            initial={editing.fields}
            onSaved={refreshSoon}
            onCancel={() => setEditing(null)}
          />
        ) : (
          <ConnectForgeForm key="new" onSaved={refreshSoon} />
        )}
      </section>
      <JobSettingsForm />
      <AppSettings />
    </section>
  );
}
