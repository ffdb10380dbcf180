// Hash routing of the one window: #/jobs (default), #/jobs/<url-encoded id>, #/settings,
// #/onboarding.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'jobs' }
  | { page: 'job'; id: string }
  | { page: 'settings' }
  | { page: 'onboarding' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  const job = /^\/jobs\/(.+)$/.exec(path);
  if (job) {
    try {
      return { page: 'job', id: decodeURIComponent(job[1]) };
    } catch {
      return { page: 'jobs' };
    }
  }
  if (path === '/settings') return { page: 'settings' };
  if (path === '/onboarding') return { page: 'onboarding' };
  return { page: 'jobs' };
}

export function jobHref(id: string): string {
  return `#/jobs/${encodeURIComponent(id)}`;
}

export function navigate(hash: string): void {
  const target = hash.startsWith('#') ? hash : `#${hash}`;
  if (window.location.hash !== target) window.location.hash = target;
}

/** The current route, following hash changes. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', update);
    update();
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}
