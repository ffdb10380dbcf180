// The IPC contract between this UI and the tray app's Rust side: every type that crosses it,
// one typed wrapper per command, and the events it emits. This is the only module that talks
// to @tauri-apps/api/core; components import from here.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

// ---- Types ---------------------------------------------------------------------------------

export type HealthState = 'connected' | 'starting' | 'daemon_stopped' | 'not_installed' | 'unreachable';

export interface Health {
  state: HealthState;
  reason: string | null;
}

export type Mode = 'user' | 'service';

export interface AppState {
  health: Health;
  mode: Mode;
  status: Status | null;
  startAtLogin: boolean;
  notifications: boolean;
  onboarded: boolean;
}

export type DaemonRunState = 'running' | 'paused' | 'draining' | 'stopping';

export interface Status {
  version: string;
  state: DaemonRunState;
  activeJobs: number;
  maxJobs: number;
  queuedJobs: number;
  providers: Provider[];
  dataDir: string;
  drainDeadline: string | null;
  uptimeSecs: number;
  /** The Linux workers jobs run in (the worker VM), with their state. */
  workers: Worker[];
}

export interface Worker {
  /** e.g. "worker VM" */
  name: string;
  state: 'stopped' | 'booting' | 'ready' | 'stopping' | 'unknown';
  healthy: boolean;
  detail: string;
}

export type CredentialSource = 'keyring' | 'systemd-creds' | 'environment' | 'app_key' | 'file' | 'missing';

export interface Provider {
  /** e.g. "github:octo-org" */
  name: string;
  /** e.g. "github" */
  kind: string;
  url: string;
  connected: boolean;
  lastPoll: string | null;
  lastError: string;
  rateLimitRemaining: number;
  /** "poll 10s" | "webhook" */
  discovery: string;
  credential: CredentialSource;
}

export type JobState =
  | 'queued'
  | 'claiming'
  | 'claimed'
  | 'starting'
  | 'running'
  | 'finished'
  | 'failed'
  | 'cleaned';

export interface Job {
  /** e.g. "github:octo-org#4242" */
  id: string;
  provider: string;
  forgeJobId: number;
  runId: number;
  repo: string;
  workflow: string;
  name: string;
  labels: string[];
  runnerName: string;
  image: string;
  /** e.g. "linux" */
  target: string;
  state: JobState;
  /** "success" | "failure" | "cancelled" | "killed" | "abandoned" | "" */
  conclusion: string;
  exitCode: number | null;
  queuedAt: string | null;
  claimedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  htmlUrl: string;
}

export interface UiError {
  code: string;
  message: string;
}

export type LogEvent = { kind: 'data'; text: string } | { kind: 'end' } | { kind: 'error'; error: UiError };

export type ForgeKind = 'github' | 'forgejo' | 'gitea' | 'gitlab' | 'woodpecker';

export type ForgeAuth =
  | { type: 'token'; token: string }
  | { type: 'app'; appId: number; installationId: number; keyFile: string };

export interface ForgeInput {
  kind: ForgeKind;
  /** GitHub: '' = github.com, else the Enterprise API URL; others: the instance / server URL. */
  url: string;
  owner: string;
  /** Empty: the whole organization. */
  repos: string[];
  /** null: keep the token stored for this forge (an edited forge). */
  auth: ForgeAuth | null;
  /** e.g. "10s" */
  pollInterval: string | null;
  webhook: boolean;
  /** Labels the runners carry besides self-hosted, the OS and the architecture. */
  labels: string[];
  /** The image this forge's jobs run in; empty: the default image. */
  image: string;
  /** With `webhook`: the secret deliveries are signed with ('' keeps the stored one). */
  webhookSecret: string;
}

/** A saved forge as the daemon's config file has it, without secrets (`auth` null: a stored token). */
export type ForgeView = Omit<ForgeInput, 'webhookSecret'>;

export interface TestResult {
  ok: boolean;
  missing: string[];
  message: string;
}

export interface SavedForge {
  name: string;
  note: string;
}

export interface CredentialNote {
  note: string;
}

export interface LabelProfile {
  /** Empty: the daemon makes one from the labels. */
  name: string;
  labels: string[];
  /** Empty: the forge's or the default image. */
  image: string;
}

/** How jobs run: the daemon checks, saves (in its config file) and applies these at once. */
export interface JobSettings {
  maxConcurrent: number;
  defaultImage: string;
  profiles: LabelProfile[];
  /** Read-only: the daemon's config file. */
  configPath: string;
  /** host:port the daemon takes webhook deliveries on; '' for none. */
  webhookListen: string;
}

export interface SavedJobSettings {
  settings: JobSettings | null;
  note: string;
}

export interface TestJobResult {
  ok: boolean;
  output: string;
  message: string;
}

// ---- Errors --------------------------------------------------------------------------------

/** Whatever a command rejected with, as a UiError (Rust sends one; anything else is a bug there). */
export function toUiError(e: unknown): UiError {
  if (e && typeof e === 'object' && 'message' in e) {
    const o = e as { code?: unknown; message: unknown };
    return { code: typeof o.code === 'string' ? o.code : 'internal', message: String(o.message) };
  }
  return { code: 'internal', message: typeof e === 'string' ? e : 'Something went wrong.' };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toUiError(e);
  }
}

// ---- Commands ------------------------------------------------------------------------------

export const appState = () => call<AppState>('app_state');
export const listJobs = (all: boolean) => call<Job[]>('list_jobs', { all });
export const getJob = (id: string) => call<Job>('get_job', { id });
export const stopLogs = (handle: number) => call<null>('stop_logs', { handle });
export const killJob = (id: string) => call<null>('kill_job', { id });
export const pause = () => call<Status>('pause');
export const resume = () => call<Status>('resume');
export const drain = (timeoutSecs: number | null) => call<Status>('drain', { timeoutSecs });
export const testForge = (forge: ForgeInput) => call<TestResult>('test_forge', { forge });
export const saveForge = (forge: ForgeInput) => call<SavedForge>('save_forge', { forge });
export const getForge = (name: string) => call<ForgeView>('get_forge', { name });
export const removeForge = (name: string) => call<null>('remove_forge', { name });
export const setCredential = (provider: string, secret: string) =>
  call<CredentialNote>('set_credential', { provider, secret });
export const getJobSettings = () => call<JobSettings>('get_job_settings');
export const saveJobSettings = (settings: JobSettings) =>
  call<SavedJobSettings>('save_job_settings', { settings });
export const startDaemon = () => call<null>('start_daemon');
export const installDaemon = () => call<null>('install_daemon');
export const setMode = (mode: Mode) => call<AppState>('set_mode', { mode });
export const setStartAtLogin = (enabled: boolean) => call<AppState>('set_start_at_login', { enabled });
export const setNotifications = (enabled: boolean) => call<AppState>('set_notifications', { enabled });
export const finishOnboarding = () => call<AppState>('finish_onboarding');
export const runTestJob = () => call<TestJobResult>('run_test_job');
export const openUrl = (url: string) => call<null>('open_url', { url });

/**
 * Streams a job's log into `onEvent` until the job ends or `stopLogs(handle)`.
 * Resolves to the handle once the Rust side has started following.
 */
export function followLogs(id: string, onEvent: (event: LogEvent) => void): Promise<number> {
  const channel = new Channel<LogEvent>();
  channel.onmessage = onEvent;
  return call<number>('follow_logs', { id, onEvent: channel });
}

// ---- Events --------------------------------------------------------------------------------

export type { UnlistenFn };

export interface EventMap {
  /** Every change of health or status. */
  'daemon:state': AppState;
  /** A full snapshot of the unfinished jobs, sent on each (re)connect. */
  'daemon:jobs': Job[];
  /** One job changed. */
  'daemon:job': Job;
  /** A hash route, e.g. "#/settings" (sent by the tray menu). */
  navigate: string;
}

export type EventName = keyof EventMap;

export function onEvent<E extends EventName>(event: E, handler: (payload: EventMap[E]) => void): Promise<UnlistenFn> {
  return listen<EventMap[E]>(event, (e) => handler(e.payload));
}
