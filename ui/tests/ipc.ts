// A fake Rust side for tests: mockIPC with a handler per command, a log of every call, events
// delivered through the mock event system, and log channels driven like the real transport.
import { act } from '@testing-library/preact';
import type { Channel } from '@tauri-apps/api/core';
import { emit } from '@tauri-apps/api/event';
import { mockIPC } from '@tauri-apps/api/mocks';
import type { EventMap, LogEvent, UiError } from '../src/api';

export type Handler = (args: Record<string, unknown>) => unknown;

export interface Call {
  cmd: string;
  args: Record<string, unknown>;
}

export interface FakeIpc {
  calls: Call[];
  /** The calls of one command, in order. */
  callsOf(cmd: string): Record<string, unknown>[];
  /** Replaces or adds command handlers. */
  on(handlers: Record<string, Handler>): void;
}

/** A handler that rejects the way a Rust command does. */
export function rejectWith(error: UiError): Handler {
  return () => {
    throw error;
  };
}

export function fakeIpc(handlers: Record<string, Handler>): FakeIpc {
  const table = { ...handlers };
  const calls: Call[] = [];
  mockIPC(
    (cmd, payload) => {
      const args = (payload ?? {}) as Record<string, unknown>;
      calls.push({ cmd, args });
      const handler = table[cmd];
      if (!handler) {
        throw { code: 'not_implemented', message: `no mock for ${cmd}` } satisfies UiError;
      }
      return handler(args);
    },
    { shouldMockEvents: true },
  );
  return {
    calls,
    callsOf: (cmd) => calls.filter((c) => c.cmd === cmd).map((c) => c.args),
    on: (more) => Object.assign(table, more),
  };
}

/** Emits an event as the Rust side would, and lets the UI render what follows. */
export async function emitEvent<E extends keyof EventMap>(event: E, payload: EventMap[E]): Promise<void> {
  await act(async () => {
    await emit(event, payload);
  });
}

/** Drives a Channel the UI passed to a command, message by message, like Rust does. */
export class ChannelDriver {
  private index = 0;

  constructor(private readonly channel: Channel<LogEvent>) {}

  async send(message: LogEvent): Promise<void> {
    await act(async () => {
      internals().runCallback(this.channel.id, { index: this.index++, message });
    });
  }
}

function internals(): { runCallback: (id: number, data: unknown) => void } {
  return (window as unknown as { __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void } })
    .__TAURI_INTERNALS__;
}
