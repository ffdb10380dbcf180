// One labelled form field: its input, a hint, and the reason it cannot be sent (as #<id>-error).
import type { ComponentChildren } from 'preact';

interface FieldProps {
  label: string;
  htmlFor: string;
  error?: string;
  hint?: string;
  children: ComponentChildren;
}

export function Field({ label, htmlFor, error, hint, children }: FieldProps) {
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={htmlFor}>{label}</label>
      {children}
      {hint && <small class="hint">{hint}</small>}
      {error && (
        <small class="field-error" id={`${htmlFor}-error`}>
          {error}
        </small>
      )}
    </div>
  );
}
