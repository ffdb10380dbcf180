// The app-wide state: the AppState from `app_state` kept current by `daemon:state`, shared
// with every screen through a context, plus a way to store what commands answer.
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { appState as fetchAppState, type AppState, type Status, type UiError } from './api';
import { useEvent } from './hooks';

export interface AppStateValue {
  /** null until `app_state` first answers. */
  state: AppState | null;
  /** Why `app_state` failed, when it did and nothing came since. */
  error: UiError | null;
  setState: (state: AppState) => void;
  /** Stores the Status a command (pause, resume, drain) answered with. */
  setStatus: (status: Status) => void;
  /** Asks `app_state` again (after saving or removing a forge, or to retry). */
  refresh: () => Promise<void>;
}

const Context = createContext<AppStateValue | null>(null);

export function AppStateProvider({ children }: { children: ComponentChildren }) {
  const [state, setStateRaw] = useState<AppState | null>(null);
  const [error, setError] = useState<UiError | null>(null);

  const setState = useCallback((next: AppState) => {
    setStateRaw(next);
    setError(null);
  }, []);

  const setStatus = useCallback((status: Status) => {
    setStateRaw((prev) => (prev ? { ...prev, status } : prev));
  }, []);

  const refresh = useCallback(async () => {
    try {
      setState(await fetchAppState());
    } catch (e) {
      setError(e as UiError);
    }
  }, [setState]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  useEvent('daemon:state', setState);

  const value = useMemo(
    () => ({ state, error, setState, setStatus, refresh }),
    [state, error, setState, setStatus, refresh],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useAppState(): AppStateValue {
  const value = useContext(Context);
  if (!value) throw new Error('useAppState outside AppStateProvider');
  return value;
}
