// #jobs: the job list from list_jobs, kept current by daemon:jobs / daemon:job, with the
// state filter, the text search and the "show history" switch.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { listJobs, type Job, type UiError } from '../api';
import { useAppState } from '../appState';
import { useEvent } from '../hooks';
import { applySnapshot, matchesState, matchesText, upsertJob, type StateFilter } from '../jobs';
import { ErrorMessage } from './ErrorMessage';
import { JobsFilters } from './JobsFilters';
import { JobsTable } from './JobsTable';

export function JobsPage() {
  const { state } = useAppState();
  const connected = state?.health.state === 'connected';
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const [stateFilter, setStateFilter] = useState<StateFilter>('all');
  const [text, setText] = useState('');
  const [history, setHistory] = useState(false);

  // (Re)load on mount, when history is switched, and when the daemon comes (back). Without a
  // daemon there is nothing to ask; the health banner says why.
  useEffect(() => {
    if (!connected) return undefined;
    let current = true;
    listJobs(history).then(
      (list) => {
        if (!current) return;
        setJobs(list);
        setError(null);
      },
      (e: UiError) => {
        if (current) setError(e);
      },
    );
    return () => {
      current = false;
    };
  }, [history, connected]);

  useEvent('daemon:jobs', (snapshot) => setJobs((prev) => applySnapshot(prev ?? [], snapshot)));
  useEvent('daemon:job', (job) => setJobs((prev) => upsertJob(prev ?? [], job)));

  const shown = useMemo(
    () => (jobs ?? []).filter((j) => matchesState(j, stateFilter) && matchesText(j, text)),
    [jobs, stateFilter, text],
  );

  return (
    <section id="jobs" class="page">
      <JobsFilters
        state={stateFilter}
        onState={setStateFilter}
        text={text}
        onText={setText}
        history={history}
        onHistory={setHistory}
      />
      <ErrorMessage error={error} />
      {jobs === null && !error && (
        <p class="muted">{connected ? 'Loading jobs…' : 'The jobs show here once ephemerd is running.'}</p>
      )}
      {jobs !== null && <JobsTable jobs={shown} />}
      {jobs !== null && jobs.length === 0 && (
        <p id="jobs-empty" class="empty">
          No jobs yet. Queue a workflow on a connected forge and it shows up here.
        </p>
      )}
      {jobs !== null && jobs.length > 0 && shown.length === 0 && (
        <p id="jobs-empty" class="empty">
          No jobs match these filters.
        </p>
      )}
    </section>
  );
}
