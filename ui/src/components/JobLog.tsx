// A job's log: streamed from follow_logs into #job-log (stopped with stop_logs when the
// view goes away), with #log-follow (auto-scroll), #log-search (highlight and count) and
// #log-copy.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { followLogs, stopLogs, type UiError } from '../api';
import { findMatches, LogBuffer, matchCount } from '../log';
import { ErrorMessage } from './ErrorMessage';

/** At most this many matches are highlighted (all are counted). */
const MAX_MARKS = 2000;

type Stream = 'waiting' | 'streaming' | 'ended';

export function JobLog({ id }: { id: string }) {
  const buffer = useRef(new LogBuffer());
  const [, setVersion] = useState(0);
  const [stream, setStream] = useState<Stream>('waiting');
  const [error, setError] = useState<UiError | null>(null);
  const [follow, setFollow] = useState(true);
  const [search, setSearch] = useState('');
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null);
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    buffer.current = new LogBuffer();
    let active = true;
    let ended = false;
    let handle: number | null = null;
    followLogs(id, (event) => {
      if (!active) return;
      if (event.kind === 'data') {
        buffer.current.append(event.text);
        setVersion((v) => v + 1);
      } else {
        ended = true;
        if (event.kind === 'error') setError(event.error);
        setStream('ended');
      }
    }).then(
      (h) => {
        if (!active) {
          if (!ended) stopLogs(h).catch(() => undefined);
          return;
        }
        handle = h;
        setStream((s) => (s === 'waiting' ? 'streaming' : s));
      },
      (e: UiError) => {
        if (!active) return;
        ended = true;
        setError(e);
        setStream('ended');
      },
    );
    return () => {
      active = false;
      if (handle !== null && !ended) stopLogs(handle).catch(() => undefined);
    };
  }, [id]);

  const text = buffer.current.text;
  const matches = useMemo(() => findMatches(text, search), [text, search]);

  useLayoutEffect(() => {
    if (follow && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text, follow]);

  async function copy() {
    try {
      await navigator.clipboard.writeText(buffer.current.text);
      setCopied('yes');
    } catch {
      setCopied('failed');
    }
  }

  return (
    <section class="log">
      <div class="log-tools">
        <h2>Log</h2>
        <span id="log-status" class="muted" data-stream={stream}>
          {stream === 'waiting' ? 'Connecting to the log…' : stream === 'streaming' ? 'Live' : 'Ended'}
        </span>
        <label class="check">
          <input id="log-follow" type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />
          Follow
        </label>
        <input
          id="log-search"
          type="search"
          placeholder="Search the log"
          aria-label="Search the log"
          value={search}
          onInput={(e) => setSearch(e.currentTarget.value)}
        />
        {search !== '' && (
          <span id="log-search-count" class="muted">
            {matchCount(matches.length)}
          </span>
        )}
        <button type="button" id="log-copy" onClick={copy} disabled={text === ''}>
          {copied === 'yes' ? 'Copied' : 'Copy'}
        </button>
        {copied === 'failed' && <span class="field-error">Could not copy to the clipboard.</span>}
      </div>
      {buffer.current.cut && (
        <p id="log-cut" class="note">
          Only the last 2 MB of this log are kept here; its start was cut.
        </p>
      )}
      <ErrorMessage error={error} />
      <pre id="job-log" ref={pre}>
        {search === '' ? text : highlight(text, matches, search.length)}
      </pre>
    </section>
  );
}

function highlight(text: string, matches: number[], length: number) {
  const parts = [];
  let at = 0;
  for (const start of matches.slice(0, MAX_MARKS)) {
    parts.push(text.slice(at, start));
    parts.push(<mark key={start}>{text.slice(start, start + length)}</mark>);
    at = start + length;
  }
  parts.push(text.slice(at));
  return parts;
}
