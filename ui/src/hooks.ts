// Small shared hooks: subscribing to a Tauri event for a component's lifetime, and a clock
// that ticks for live durations.
import { useEffect, useRef, useState } from 'preact/hooks';
import { onEvent, type EventMap, type EventName } from './api';

/**
 * Calls `handler` for every `event` while the component is mounted. The latest handler is
 * always used, so it may close over fresh state without resubscribing.
 */
export function useEvent<E extends EventName>(event: E, handler: (payload: EventMap[E]) => void): void {
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => {
    let active = true;
    let unlisten: (() => void) | null = null;
    // Unlistening only fails when the window is going away anyway.
    const drop = (fn: () => void) => void Promise.resolve().then(fn).catch(() => undefined);
    onEvent(event, (payload) => {
      if (active) latest.current(payload);
    }).then(
      (fn) => {
        if (active) unlisten = fn;
        else drop(fn);
      },
      () => {
        // Outside Tauri (e.g. a plain browser) there is no event system: nothing to listen to.
      },
    );
    return () => {
      active = false;
      if (unlisten) drop(unlisten);
    };
  }, [event]);
}

/** The current time in milliseconds, refreshed every `intervalMs` while `enabled`. */
export function useNow(enabled: boolean, intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!enabled) return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [enabled, intervalMs]);
  return enabled ? now : Date.now();
}
