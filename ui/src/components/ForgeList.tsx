// #forges: the forges the daemon has configured (status.providers), one li[data-forge] each.
import type { Provider } from '../api';
import { ForgeItem } from './ForgeItem';

interface Props {
  providers: Provider[] | null;
  onChanged: () => void;
  onEdit?: (name: string) => void;
}

export function ForgeList({ providers, onChanged, onEdit }: Props) {
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
        <ForgeItem key={p.name} provider={p} onChanged={onChanged} onEdit={p.kind === 'github' ? onEdit : undefined} />
      ))}
    </ul>
  );
}
