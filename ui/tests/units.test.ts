// Pure helpers: state words, the status line, durations, list merging, the bounded log.
import { describe, expect, it } from 'vitest';
import { formatDuration, jobStateWord, sortNewestFirst, statusLine } from '../src/format';
import { applySnapshot, upsertJob } from '../src/jobs';
import { findMatches, LogBuffer } from '../src/log';
import { parseRoute } from '../src/router';
import { job, status } from './fixtures';

describe('words', () => {
  it('names job states as a person would', () => {
    expect(jobStateWord({ state: 'claiming', conclusion: '' })).toBe('picking up');
    expect(jobStateWord({ state: 'starting', conclusion: '' })).toBe('starting');
    expect(jobStateWord({ state: 'cleaned', conclusion: 'success' })).toBe('succeeded');
    expect(jobStateWord({ state: 'cleaned', conclusion: 'abandoned' })).toBe('failed');
    expect(jobStateWord({ state: 'finished', conclusion: 'cancelled' })).toBe('failed');
    expect(jobStateWord({ state: 'failed', conclusion: '' })).toBe('failed');
    expect(jobStateWord({ state: 'finished', conclusion: '' })).toBe('finished');
    expect(jobStateWord({ state: 'unknown' as never, conclusion: '' })).toBe('unknown');
  });

  it('builds the status line', () => {
    expect(statusLine(status({ activeJobs: 2, queuedJobs: 1, state: 'paused' }))).toBe('2 running · 1 queued · paused');
    expect(statusLine(status({ state: 'draining' }))).toBe('idle · draining');
    expect(statusLine(status({ queuedJobs: 3 }))).toBe('3 queued');
    const vm = { name: 'worker VM', state: 'booting' as const, healthy: true, detail: 'qemu (kvm)' };
    expect(statusLine(status({ activeJobs: 1, workers: [vm] }))).toBe('1 running · worker VM booting');
    expect(statusLine(status({ workers: [{ ...vm, state: 'stopped', healthy: false }] }))).toBe(
      'idle · worker VM stopped (died)',
    );
  });

  it('formats durations', () => {
    expect(formatDuration(12_400)).toBe('12s');
    expect(formatDuration(245_000)).toBe('4m 05s');
    expect(formatDuration(2 * 3600_000 + 3 * 60_000)).toBe('2h 03m');
  });
});

describe('routes', () => {
  it('parses hash routes, decoding job ids', () => {
    expect(parseRoute('')).toEqual({ page: 'jobs' });
    expect(parseRoute('#/jobs/github%3Aocto-org%234242')).toEqual({ page: 'job', id: 'github:octo-org#4242' });
    expect(parseRoute('#/settings')).toEqual({ page: 'settings' });
    expect(parseRoute('#/onboarding')).toEqual({ page: 'onboarding' });
    expect(parseRoute('#/nowhere')).toEqual({ page: 'jobs' });
  });
});

describe('job lists', () => {
  it('sorts newest first, upserts and applies snapshots', () => {
    const a = job({ id: 'a', queuedAt: '2025-01-01T00:00:00Z' });
    const b = job({ id: 'b', queuedAt: '2025-01-02T00:00:00Z', state: 'cleaned', conclusion: 'success' });
    expect(sortNewestFirst([a, b]).map((j) => j.id)).toEqual(['b', 'a']);
    expect(upsertJob([b, a], { ...a, state: 'finished' }).map((j) => [j.id, j.state])).toEqual([
      ['b', 'cleaned'],
      ['a', 'finished'],
    ]);
    expect(applySnapshot([b, a], []).map((j) => j.id)).toEqual(['b']);
  });
});

describe('log buffer', () => {
  it('keeps only the end of a long log, cut at a line start', () => {
    const log = new LogBuffer(1000);
    for (let i = 0; i < 300; i++) log.append(`line ${String(i).padStart(3, '0')}\n`);
    expect(log.cut).toBe(true);
    expect(log.text.length).toBeLessThanOrEqual(1000);
    expect(log.text.startsWith('line ')).toBe(true);
    expect(log.text.endsWith('line 299\n')).toBe(true);
  });

  it('strips colours and finds matches case-insensitively', () => {
    const log = new LogBuffer();
    log.append('\u001b[1;31mError\u001b[0m and error\r\n');
    expect(log.text).toBe('Error and error\n');
    expect(log.cut).toBe(false);
    expect(findMatches(log.text, 'ERROR')).toEqual([0, 10]);
    expect(findMatches(log.text, '')).toEqual([]);
  });
});
