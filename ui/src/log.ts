// A job log held in memory: bounded to its last ~2 MB (cut at a line start), with ANSI
// colour codes stripped, and the search over it.

/** How much log text is kept (characters; logs are mostly ASCII, so about 2 MB). */
export const MAX_LOG_CHARS = 2 * 1024 * 1024;

// CSI sequences (colours, cursor moves) and OSC sequences (titles, links).
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

export class LogBuffer {
  text = '';
  /** Whether the start of the log was dropped to stay within `max`. */
  cut = false;

  constructor(private readonly max = MAX_LOG_CHARS) {}

  append(chunk: string): void {
    this.text += chunk.replace(ANSI, '').replace(/\r\n/g, '\n');
    if (this.text.length > this.max) {
      // Keep a little less than the maximum so a busy log is not re-cut on every chunk.
      let from = this.text.length - Math.floor(this.max * 0.875);
      const nl = this.text.indexOf('\n', from);
      if (nl !== -1 && nl - from < 4096) from = nl + 1;
      this.text = this.text.slice(from);
      this.cut = true;
    }
  }
}

/** Start offsets of every case-insensitive occurrence of `needle` in `text`. */
export function findMatches(text: string, needle: string): number[] {
  if (needle === '') return [];
  const hay = text.toLowerCase();
  const n = needle.toLowerCase();
  const found: number[] = [];
  for (let i = hay.indexOf(n); i !== -1; i = hay.indexOf(n, i + n.length)) found.push(i);
  return found;
}

export function matchCount(n: number): string {
  if (n === 0) return 'no matches';
  return n === 1 ? '1 match' : `${n} matches`;
}
