// #job-detail: one job (get_job, then live from daemon:job), its timings, labels, image and
// runner, the link to its forge page, #kill-job, and its log.
import { useEffect, useState } from 'preact/hooks';
import { getJob, killJob, openUrl, type Job, type UiError } from '../api';
import { useAppState } from '../appState';
import { formatDuration, jobDuration, jobPhase, jobStateWord } from '../format';
import { useEvent, useNow } from '../hooks';
import { useConfirm } from './ConfirmDialog';
import { ErrorMessage } from './ErrorMessage';
import { ForgeIcon, kindOf } from './ForgeIcon';
import { JobLog } from './JobLog';
import { JobTimings } from './JobTimings';
import { LabelChips } from './LabelChips';

export function JobDetail({ id }: { id: string }) {
  const { state } = useAppState();
  const connected = state?.health.state === 'connected';
  const [job, setJob] = useState<Job | null>(null);
  const [loadError, setLoadError] = useState<UiError | null>(null);
  const [actionError, setActionError] = useState<UiError | null>(null);
  const [killing, setKilling] = useState(false);
  const confirm = useConfirm();

  // Asked when the view opens and again when the daemon comes (back); events keep it current.
  useEffect(() => {
    if (!connected) return undefined;
    let current = true;
    getJob(id).then(
      (j) => {
        if (!current) return;
        setJob(j);
        setLoadError(null);
      },
      (e: UiError) => {
        if (current) setLoadError(e);
      },
    );
    return () => {
      current = false;
    };
  }, [id, connected]);

  useEvent('daemon:job', (j) => {
    if (j.id === id) {
      setJob(j);
      setLoadError(null);
    }
  });

  const live = job !== null && jobPhase(job) === 'active';
  const now = useNow(live, 1000);

  async function kill() {
    if (!job) return;
    const question = `Kill ${job.workflow} / ${job.name}? Its container is stopped and the job fails.`;
    if (!(await confirm(question, 'Kill job'))) return;
    setKilling(true);
    setActionError(null);
    try {
      await killJob(job.id);
    } catch (e) {
      setActionError(e as UiError);
    } finally {
      setKilling(false);
    }
  }

  async function open(e: Event) {
    e.preventDefault();
    if (!job?.htmlUrl) return;
    setActionError(null);
    try {
      await openUrl(job.htmlUrl);
    } catch (err) {
      setActionError(err as UiError);
    }
  }

  const duration = job ? jobDuration(job, now) : null;

  return (
    <section id="job-detail" class="page">
      <p class="back">
        <a href="#/jobs">← All jobs</a>
      </p>
      <ErrorMessage error={loadError} />
      {!job && !loadError && (
        <p class="muted">{connected ? 'Loading the job…' : 'The job shows here once ephemerd is running.'}</p>
      )}
      {job && (
        <>
          <div class="detail-head">
            <h1>
              <ForgeIcon kind={kindOf(job.provider)} /> {job.workflow} / {job.name}
            </h1>
            <span id="job-state" class={`badge phase-${jobPhase(job)}`} data-state={job.state}>
              {jobStateWord(job)}
            </span>
            {duration !== null && <span class="muted">{formatDuration(duration)}</span>}
            <span class="spacer" />
            {job.htmlUrl && (
              <a id="job-link" href={job.htmlUrl} onClick={open}>
                Open on the forge
              </a>
            )}
            <button
              type="button"
              id="kill-job"
              class="danger"
              disabled={job.state !== 'running' || killing}
              onClick={kill}
            >
              {killing ? 'Killing…' : 'Kill'}
            </button>
          </div>
          <ErrorMessage error={actionError} />
          <div class="detail-grid">
            <dl class="facts">
              <dt>Repository</dt>
              <dd>{job.repo}</dd>
              <dt>Forge</dt>
              <dd>{job.provider}</dd>
              <dt>Job id</dt>
              <dd>
                <code>{job.id}</code>
              </dd>
              <dt>Labels</dt>
              <dd id="job-labels">
                <LabelChips labels={job.labels} />
              </dd>
              <dt>Target</dt>
              <dd>{job.target}</dd>
              <dt>Image</dt>
              <dd id="job-image">
                <code>{job.image || '—'}</code>
              </dd>
              <dt>Runner</dt>
              <dd id="job-runner">
                <code>{job.runnerName || '—'}</code>
              </dd>
              <dt>Conclusion</dt>
              <dd id="job-conclusion">
                {job.conclusion || '—'}
                {job.exitCode !== null && <span class="muted"> (exit code {job.exitCode})</span>}
              </dd>
            </dl>
            <JobTimings job={job} />
          </div>
        </>
      )}
      {connected && !loadError && <JobLog id={id} />}
    </section>
  );
}
