// The connect-a-forge form as data: its fields, what each kind asks for and calls them,
// validation, and the exact ForgeInput sent to test_forge / save_forge.
import type { ForgeInput, ForgeKind, ForgeView } from './api';

export interface ForgeFields {
  kind: ForgeKind;
  url: string;
  owner: string;
  repos: string;
  authType: 'token' | 'app';
  token: string;
  appId: string;
  installationId: string;
  keyFile: string;
  poll: string;
  webhook: boolean;
  /** Comma-separated runner labels. */
  labels: string;
  image: string;
  webhookSecret: string;
}

export const EMPTY_FIELDS: ForgeFields = {
  kind: 'github',
  url: '',
  owner: '',
  repos: '',
  authType: 'token',
  token: '',
  appId: '',
  installationId: '',
  keyFile: '',
  poll: '10s',
  webhook: false,
  labels: '',
  image: '',
  webhookSecret: '',
};

export interface KindInfo {
  label: string;
  urlLabel: string;
  urlPlaceholder: string;
  /** Whether the URL may be left empty. */
  urlOptional: boolean;
  /** Whether the runner is registered for an owner (and, optionally, some of its repositories). */
  hasOwner: boolean;
  /** Whether a GitHub App may be used instead of a token. */
  hasApp: boolean;
  secretLabel: string;
  secretHint: string;
}

export const KINDS: Record<ForgeKind, KindInfo> = {
  github: {
    label: 'GitHub',
    urlLabel: 'GitHub Enterprise API URL (leave empty for github.com)',
    urlPlaceholder: 'https://github.example.com/api/v3',
    urlOptional: true,
    hasOwner: true,
    hasApp: true,
    secretLabel: 'Personal access token',
    secretHint: 'A fine-grained token with the "Self-hosted runners" (organization) or "Administration" (repository) permission, read and write.',
  },
  forgejo: {
    label: 'Forgejo',
    urlLabel: 'Instance URL',
    urlPlaceholder: 'https://codeberg.org',
    urlOptional: false,
    hasOwner: true,
    hasApp: false,
    secretLabel: 'Registration token',
    secretHint: 'From the owner\'s Settings → Actions → Runners → "Create new runner".',
  },
  gitea: {
    label: 'Gitea',
    urlLabel: 'Instance URL',
    urlPlaceholder: 'https://gitea.example.com',
    urlOptional: false,
    hasOwner: true,
    hasApp: false,
    secretLabel: 'Registration token',
    secretHint: 'From the owner\'s Settings → Actions → Runners → "Create new runner".',
  },
  gitlab: {
    label: 'GitLab',
    urlLabel: 'Instance URL',
    urlPlaceholder: 'https://gitlab.com',
    urlOptional: false,
    hasOwner: false,
    hasApp: false,
    secretLabel: 'Runner token',
    secretHint: 'The glrt-… token shown when you create a runner in GitLab (CI/CD → Runners → New runner).',
  },
  woodpecker: {
    label: 'Woodpecker',
    urlLabel: 'Server URL',
    urlPlaceholder: 'https://ci.example.com',
    urlOptional: false,
    hasOwner: false,
    hasApp: false,
    secretLabel: 'Agent secret',
    secretHint: 'The agent secret configured on the Woodpecker server (WOODPECKER_AGENT_SECRET) or of a registered agent.',
  },
};

export const KIND_ORDER: ForgeKind[] = ['github', 'forgejo', 'gitea', 'gitlab', 'woodpecker'];

export type FieldErrors = Partial<
  Record<
    'url' | 'owner' | 'token' | 'appId' | 'installationId' | 'keyFile' | 'poll' | 'labels' | 'image' | 'webhookSecret',
    string
  >
>;

/** Comma-separated labels as a list: trimmed, empty ones dropped. */
export function splitLabels(s: string): string[] {
  return s
    .split(',')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** Why a label list cannot be sent, or null. */
export function labelsError(labels: string[]): string | null {
  const bad = labels.find((l) => /\s/.test(l));
  return bad === undefined ? null : `"${bad}" has a space: separate labels with commas.`;
}

/** Why an image reference cannot be sent, or null (the daemon checks it fully). */
export function imageError(image: string): string | null {
  return /\s/.test(image.trim()) ? 'An image name has no spaces (e.g. debian:bookworm).' : null;
}

function isUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

function positiveInt(s: string): number | null {
  const t = s.trim();
  if (!/^\d+$/.test(t)) return null;
  const n = Number(t);
  return n > 0 && Number.isSafeInteger(n) ? n : null;
}

const DURATION = /^(\d+(ms|s|m|h))+$/;

/**
 * Everything wrong with the fields, keyed by field; empty when they can be sent. With `keepsToken`
 * (editing a saved token forge), an empty token keeps the stored one.
 */
export function validate(f: ForgeFields, keepsToken = false): FieldErrors {
  const info = KINDS[f.kind];
  const errors: FieldErrors = {};
  const url = f.url.trim();
  if (url === '' && !info.urlOptional) errors.url = 'Enter the address of the server.';
  else if (url !== '' && !isUrl(url)) errors.url = 'This is not a web address (it starts with https://).';
  if (info.hasOwner && f.owner.trim() === '') errors.owner = 'Enter the user or organization the runner serves.';
  if (info.hasApp && f.authType === 'app') {
    if (positiveInt(f.appId) === null) errors.appId = 'Enter the App ID (a number, on the App\'s settings page).';
    if (positiveInt(f.installationId) === null)
      errors.installationId = 'Enter the installation ID (a number, at the end of the installation\'s URL).';
    if (f.keyFile.trim() === '') errors.keyFile = 'Enter the path of the App\'s private key (.pem) file.';
  } else if (f.token.trim() === '' && !keepsToken) {
    errors.token = `Enter the ${info.secretLabel.toLowerCase()}.`;
  }
  const poll = f.poll.trim();
  if (poll !== '' && !DURATION.test(poll)) errors.poll = 'Use a duration like 10s, 1m or 1m30s.';
  const labels = labelsError(splitLabels(f.labels));
  if (labels) errors.labels = labels;
  const image = imageError(f.image);
  if (image) errors.image = image;
  const secret = f.webhookSecret.trim();
  if (f.webhook && secret !== '' && secret.length < 8) errors.webhookSecret = 'Use 8 characters or more.';
  return errors;
}

/** The ForgeInput these fields describe (call only when `validate` found nothing). */
export function toForgeInput(f: ForgeFields): ForgeInput {
  const info = KINDS[f.kind];
  // An empty token (allowed only when editing) keeps the stored one.
  const auth: ForgeInput['auth'] =
    info.hasApp && f.authType === 'app'
      ? {
          type: 'app',
          appId: positiveInt(f.appId) ?? 0,
          installationId: positiveInt(f.installationId) ?? 0,
          keyFile: f.keyFile.trim(),
        }
      : f.token.trim() === ''
        ? null
        : { type: 'token', token: f.token.trim() };
  return {
    kind: f.kind,
    url: f.url.trim(),
    owner: info.hasOwner ? f.owner.trim() : '',
    repos: info.hasOwner
      ? f.repos
          .split(',')
          .map((r) => r.trim())
          .filter((r) => r !== '')
      : [],
    auth,
    pollInterval: f.poll.trim() === '' ? null : f.poll.trim(),
    webhook: f.webhook,
    labels: splitLabels(f.labels),
    image: f.image.trim(),
    webhookSecret: f.webhook ? f.webhookSecret.trim() : '',
  };
}

/** Where the daemon takes this forge's webhook deliveries (under its webhook address). */
export function webhookPath(f: ForgeFields): string {
  const owner = f.owner.trim() || '<owner>';
  return `/hooks/${f.kind}/${owner}`;
}

/** The fields of a saved forge, to edit it (its secrets stay with the daemon). */
export function fromView(v: ForgeView): ForgeFields {
  const app = v.auth?.type === 'app' ? v.auth : null;
  return {
    ...EMPTY_FIELDS,
    kind: v.kind,
    url: v.url,
    owner: v.owner,
    repos: v.repos.join(', '),
    authType: app ? 'app' : 'token',
    appId: app ? String(app.appId) : '',
    installationId: app ? String(app.installationId) : '',
    keyFile: app ? app.keyFile : '',
    poll: v.pollInterval ?? '',
    webhook: v.webhook,
    labels: v.labels.join(', '),
    image: v.image,
  };
}
