// #onboarding: three steps to a working setup — the daemon runs, a forge is connected, a test
// job runs — each marked done or to do, then #finish-onboarding.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { finishOnboarding, runTestJob, type TestJobResult, type UiError } from '../api';
import { useAppState } from '../appState';
import { navigate } from '../router';
import { ConnectForgeForm } from './ConnectForgeForm';
import { DaemonActions } from './DaemonActions';
import { ErrorMessage } from './ErrorMessage';

const HEALTH_WORDS: Record<string, string> = {
  connected: 'ephemerd is running.',
  starting: 'Starting the daemon…',
  daemon_stopped: 'ephemerd is installed but not running. Start it:',
  not_installed: 'ephemerd runs as a system service, which is not installed yet. Install it (you are asked for an administrator password):',
  unreachable: 'ephemerd cannot be reached.',
};

export function OnboardingPage() {
  const { state, setState, refresh } = useAppState();
  const [savedForge, setSavedForge] = useState<string | null>(null);
  const [testing, setTesting] = useState(false);
  const [test, setTest] = useState<TestJobResult | null>(null);
  const [testError, setTestError] = useState<UiError | null>(null);
  const [finishing, setFinishing] = useState(false);
  const [finishError, setFinishError] = useState<UiError | null>(null);

  const health = state?.health ?? null;
  const daemonDone = health?.state === 'connected';
  const providers = state?.status?.providers ?? [];
  const forgeDone = savedForge !== null || providers.length > 0;
  const testDone = test?.ok === true;

  async function runTest() {
    setTesting(true);
    setTest(null);
    setTestError(null);
    try {
      setTest(await runTestJob());
    } catch (e) {
      setTestError(e as UiError);
    } finally {
      setTesting(false);
    }
  }

  async function finish() {
    setFinishing(true);
    setFinishError(null);
    try {
      setState(await finishOnboarding());
      navigate('#/jobs');
    } catch (e) {
      setFinishError(e as UiError);
      setFinishing(false);
    }
  }

  return (
    <section id="onboarding" class="page">
      <h1>Set up ephemerd</h1>
      <p class="muted">
        ephemerd runs your CI jobs on this computer, each in a fresh container. Three steps and it is ready.
      </p>
      <ol class="steps">
        <Step id="step-daemon" n={1} title="The daemon runs" done={daemonDone}>
          <p>{health ? (HEALTH_WORDS[health.state] ?? health.state) : 'Connecting…'}</p>
          {health?.reason && !daemonDone && <p class="muted">{health.reason}</p>}
          {health && !daemonDone && <DaemonActions state={health.state} />}
        </Step>
        <Step id="step-forge" n={2} title="Connect a forge" done={forgeDone}>
          {providers.length > 0 && (
            <p>
              Connected: {providers.map((p) => p.name).join(', ')}. You can add another one, or go on.
            </p>
          )}
          <ConnectForgeForm
            onSaved={(saved) => {
              setSavedForge(saved.name);
              void refresh();
            }}
          />
        </Step>
        <Step id="step-test" n={3} title="Run a test job" done={testDone}>
          <p>Runs a tiny container through the daemon to prove this computer can run jobs.</p>
          <button type="button" id="run-test-job" disabled={testing || !daemonDone} onClick={runTest}>
            {testing ? 'Running…' : 'Run a test job'}
          </button>
          <div id="test-job-result" class="result" aria-live="polite">
            <ErrorMessage error={testError} />
            {test && (
              <>
                <p class={test.ok ? 'success' : 'failure'}>{test.message}</p>
                {test.output && <pre class="output">{test.output}</pre>}
              </>
            )}
          </div>
        </Step>
      </ol>
      <div class="buttons">
        <button type="button" id="finish-onboarding" class="primary" disabled={finishing} onClick={finish}>
          {daemonDone && forgeDone && testDone ? 'Finish' : 'Finish for now'}
        </button>
      </div>
      <ErrorMessage error={finishError} />
    </section>
  );
}

interface StepProps {
  id: string;
  n: number;
  title: string;
  done: boolean;
  children: ComponentChildren;
}

function Step({ id, n, title, done, children }: StepProps) {
  return (
    <li id={id} class={`step ${done ? 'done' : 'todo'}`} data-done={String(done)}>
      <h2>
        <span class="mark" aria-hidden="true">
          {done ? '✓' : n}
        </span>
        {title}
        <span class="status">{done ? 'Done' : 'To do'}</span>
      </h2>
      <div class="step-body">{children}</div>
    </li>
  );
}
