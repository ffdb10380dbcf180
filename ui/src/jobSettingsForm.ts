// The job settings form as data: the fields as typed (strings), what the daemon sent turned into
// them, validation by field, and the JobSettings sent back. Profile names are carried unchanged, so
// the limits a profile has in the config file stay with it.
import type { JobSettings } from './api';
import { imageError, labelsError, splitLabels } from './forgeForm';

export const MAX_CONCURRENT = 256;

export interface ProfileFields {
  /** The daemon's name for it; '' for a new one. */
  name: string;
  labels: string;
  image: string;
}

export interface JobSettingsFields {
  maxConcurrent: string;
  defaultImage: string;
  profiles: ProfileFields[];
  webhookListen: string;
}

export interface JobSettingsErrors {
  maxConcurrent?: string;
  defaultImage?: string;
  webhookListen?: string;
  /** By profile index. */
  profiles: Record<number, { labels?: string; image?: string }>;
}

export function toFields(s: JobSettings): JobSettingsFields {
  return {
    maxConcurrent: String(s.maxConcurrent),
    defaultImage: s.defaultImage,
    profiles: s.profiles.map((p) => ({ name: p.name, labels: p.labels.join(', '), image: p.image })),
    webhookListen: s.webhookListen,
  };
}

export function validateJobSettings(f: JobSettingsFields): JobSettingsErrors {
  const errors: JobSettingsErrors = { profiles: {} };
  const n = f.maxConcurrent.trim();
  if (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > MAX_CONCURRENT)
    errors.maxConcurrent = `A whole number from 1 to ${MAX_CONCURRENT}.`;
  if (f.defaultImage.trim() === '') errors.defaultImage = 'Name an image, e.g. debian:bookworm.';
  else errors.defaultImage = imageError(f.defaultImage) ?? undefined;
  if (errors.defaultImage === undefined) delete errors.defaultImage;
  const listen = f.webhookListen.trim();
  if (listen !== '' && !/^(\[[0-9a-fA-F:.]+\]|\d{1,3}(\.\d{1,3}){3}):\d{1,5}$/.test(listen))
    errors.webhookListen = 'An IP address and port, e.g. 127.0.0.1:8089.';
  f.profiles.forEach((p, i) => {
    const e: { labels?: string; image?: string } = {};
    const labels = splitLabels(p.labels);
    if (labels.length === 0) e.labels = 'Give at least one label.';
    else e.labels = labelsError(labels) ?? undefined;
    if (e.labels === undefined) delete e.labels;
    const image = imageError(p.image);
    if (image) e.image = image;
    if (e.labels || e.image) errors.profiles[i] = e;
  });
  return errors;
}

export function hasErrors(e: JobSettingsErrors): boolean {
  return (
    e.maxConcurrent !== undefined ||
    e.defaultImage !== undefined ||
    e.webhookListen !== undefined ||
    Object.keys(e.profiles).length > 0
  );
}

/** The settings these fields describe (call only when `validateJobSettings` found nothing). */
export function toJobSettings(f: JobSettingsFields, configPath: string): JobSettings {
  return {
    maxConcurrent: Number(f.maxConcurrent.trim()),
    defaultImage: f.defaultImage.trim(),
    profiles: f.profiles.map((p) => ({ name: p.name, labels: splitLabels(p.labels), image: p.image.trim() })),
    configPath,
    webhookListen: f.webhookListen.trim(),
  };
}
