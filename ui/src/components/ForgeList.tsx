// #forges: the forges the daemon has configured (status.providers), one li[data-forge] each.
import type { Provider } from '../api';
import { ForgeItem } from './ForgeItem';

export function ForgeList({ providers, onChanged }: { providers: Provider[] | null; onChanged: () => void }) {
  if (providers === null) {
    return (
      <p id="forges" class="muted">
        The connected forges show here once ephemerd is running.
      </p>
    );
  }
  if (providers.length === 0) {
    return (
      <p id="forges" class="empty">
        No forge connected yet. Connect one below.
      </p>
    );
  }
  return (
    <ul id="forges" class="forge-list">
      {providers.map((p) => (
        <ForgeItem key={p.name} provider={p} onChanged={onChanged} />
      ))}
    </ul>
  );
}
