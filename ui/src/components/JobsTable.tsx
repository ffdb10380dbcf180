// #jobs-table: one row per job (tr[data-job-id][data-state]); a click opens the job. Times
// tick while a job is live.
import type { Job } from '../api';
import { formatAbsolute, formatDuration, formatRelative, isTerminal, jobDuration, jobPhase, jobStateWord, parseTime } from '../format';
import { useNow } from '../hooks';
import { jobHref, navigate } from '../router';
import { ForgeIcon, kindOf } from './ForgeIcon';
import { LabelChips } from './LabelChips';

export function JobsTable({ jobs }: { jobs: Job[] }) {
  // Live durations tick every second; otherwise only the relative start times age.
  const now = useNow(true, jobs.some((j) => !isTerminal(j)) ? 1000 : 30000);
  return (
    <table id="jobs-table" class="table">
      <thead>
        <tr>
          <th>Forge</th>
          <th>Repository</th>
          <th>Workflow / job</th>
          <th>Labels</th>
          <th>Target</th>
          <th>State</th>
          <th>Started</th>
          <th>Duration</th>
          <th>Conclusion</th>
        </tr>
      </thead>
      <tbody>
        {jobs.map((job) => (
          <JobRow key={job.id} job={job} now={now} />
        ))}
      </tbody>
    </table>
  );
}

function JobRow({ job, now }: { job: Job; now: number }) {
  const open = () => navigate(jobHref(job.id));
  const started = parseTime(job.startedAt);
  const duration = jobDuration(job, now);
  return (
    <tr
      data-job-id={job.id}
      data-state={job.state}
      class={`job-row phase-${jobPhase(job)}`}
      tabIndex={0}
      onClick={open}
      onKeyDown={(e) => {
        if (e.key === 'Enter') open();
      }}
    >
      <td class="forge">
        <ForgeIcon kind={kindOf(job.provider)} /> <span>{job.provider}</span>
      </td>
      <td class="repo">{job.repo}</td>
      <td class="name">
        <span class="workflow">{job.workflow}</span> / {job.name}
      </td>
      <td class="labels">
        <LabelChips labels={job.labels} />
      </td>
      <td class="target">{job.target}</td>
      <td class="state">{jobStateWord(job)}</td>
      <td class="started" title={started === null ? undefined : formatAbsolute(started)}>
        {started === null ? '—' : formatRelative(started, now)}
      </td>
      <td class={`duration${isTerminal(job) ? '' : ' live'}`}>{duration === null ? '—' : formatDuration(duration)}</td>
      <td class="conclusion">{job.conclusion || '—'}</td>
    </tr>
  );
}
