// Sample data in the shapes of the IPC contract.
import type { AppState, Job, Provider, Status } from '../src/api';

export function provider(over: Partial<Provider> = {}): Provider {
  return {
    name: 'github:octo-org',
    kind: 'github',
    url: 'https://api.github.com',
    connected: true,
    lastPoll: null,
    lastError: '',
    rateLimitRemaining: 4999,
    discovery: 'poll 10s',
    credential: 'keyring',
    ...over,
  };
}

export function status(over: Partial<Status> = {}): Status {
  return {
    version: '0.3.0',
    state: 'running',
    activeJobs: 0,
    maxJobs: 2,
    queuedJobs: 0,
    providers: [provider()],
    dataDir: '/var/lib/ephemerd',
    drainDeadline: null,
    uptimeSecs: 60,
    workers: [],
    ...over,
  };
}

export function appState(over: Partial<AppState> = {}): AppState {
  return {
    health: { state: 'connected', reason: null },
    mode: 'user',
    status: status(),
    startAtLogin: false,
    notifications: true,
    onboarded: true,
    ...over,
  };
}

let next = 4000;

export function job(over: Partial<Job> = {}): Job {
  const n = next++;
  return {
    id: `github:octo-org#${n}`,
    provider: 'github:octo-org',
    forgeJobId: n,
    runId: 100 + n,
    repo: 'octo-org/app',
    workflow: 'CI',
    name: 'build',
    labels: ['self-hosted', 'linux'],
    runnerName: `ephemerd-${n}`,
    image: 'ephemerd/job:latest',
    target: 'linux',
    state: 'running',
    conclusion: '',
    exitCode: null,
    queuedAt: '2025-11-25T10:00:00Z',
    claimedAt: '2025-11-25T10:00:02Z',
    startedAt: '2025-11-25T10:00:05Z',
    finishedAt: null,
    htmlUrl: `https://github.com/octo-org/app/actions/runs/${100 + n}/job/${n}`,
    ...over,
  };
}
