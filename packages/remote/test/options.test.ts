import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RemoteError } from '@fsw/errors';
import { openRemote, pull, push } from '@fsw/remote';
import { openStore } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-remote-options-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('transfer options', () => {
  it.each([0, -1, 1.5, Number.NaN])(
    'push and pull refuse concurrency %s with E_INVALID_ARGUMENT',
    async (bad) => {
      const store = openStore(join(dir, 'local'));
      const remote = openRemote(pathToFileURL(join(dir, 'remote')).href);
      try {
        const digest = await store.put(new TextEncoder().encode('x'));
        for (const run of [
          () => push(store, remote, digest, { concurrency: bad }),
          () => pull(remote, store, digest, { concurrency: bad }),
        ]) {
          const err = await run().catch((e: unknown) => e);
          expect(RemoteError.is(err)).toBe(true);
          expect((err as RemoteError).code).toBe('E_INVALID_ARGUMENT');
          expect((err as RemoteError).message).toMatch(
            /^(push|pull): concurrency must be a positive integer/,
          );
        }
      } finally {
        await remote.close();
      }
    },
  );
});
