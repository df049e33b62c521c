import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { FileEvent, FileWatcher } from '@fsw/watch';

/** A fresh temp folder (real path, so event paths compare equal), removed by `cleanup`. */
export async function tempDir(prefix = 'fsw-watch-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), prefix)));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Short text of an event relative to `root`, e.g. `renamed b <- a` or `created d/`. */
export function show(root: string, e: FileEvent): string {
  const rel = (p: string) => relative(root, p) + (e.isDir ? '/' : '');
  return e.type === 'renamed' ? `renamed ${rel(e.path)} <- ${rel(e.oldPath)}` : `${e.type} ${rel(e.path)}`;
}

/** Everything a watcher delivers, with a way to wait for a condition (never a fixed sleep for arrival). */
export interface Collected {
  readonly events: FileEvent[];
  readonly batches: FileEvent[][];
  readonly errors: unknown[];
  /** Waits until `done()` holds, re-checking after each batch; fails with what arrived after `timeoutMs`. */
  until(done: () => boolean, timeoutMs?: number): Promise<void>;
  /** Waits for `ms` more of quiet (to assert that nothing else arrives), then returns the events. */
  settle(ms?: number): Promise<FileEvent[]>;
}

export function collect(watcher: FileWatcher, root: string): Collected {
  const events: FileEvent[] = [];
  const batches: FileEvent[][] = [];
  const errors: unknown[] = [];
  let wake: (() => void) | undefined;
  watcher.on('events', (batch) => {
    batches.push(batch);
    events.push(...batch);
    wake?.();
  });
  watcher.on('error', (error) => {
    errors.push(error);
    wake?.();
  });
  return {
    events,
    batches,
    errors,
    async until(done, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done()) {
        if (errors.length > 0) throw errors[0];
        if (Date.now() > deadline) {
          const seen = events.slice(0, 20).map((e) => show(root, e));
          throw new Error(`timed out after ${timeoutMs} ms; ${events.length} events: ${seen.join(', ')}`);
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
    },
    async settle(ms = 400) {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return events;
    },
  };
}
