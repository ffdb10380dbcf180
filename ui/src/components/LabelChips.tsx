// A job's runner labels as small chips.
export function LabelChips({ labels }: { labels: string[] }) {
  if (labels.length === 0) return <span class="muted">—</span>;
  return (
    <span class="chips">
      {labels.map((label) => (
        <span class="chip" key={label}>
          {label}
        </span>
      ))}
    </span>
  );
}
