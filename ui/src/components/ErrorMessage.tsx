// How a failed command is shown: the Rust side's sentence as is, tagged with its code.
import type { UiError } from '../api';

export function ErrorMessage({ error, id }: { error: UiError | null; id?: string }) {
  if (!error) return null;
  return (
    <p class="error" id={id} data-code={error.code} role="alert">
      {error.message}
    </p>
  );
}
