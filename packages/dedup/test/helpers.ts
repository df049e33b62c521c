import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A fresh temp dir per test; `cleanup()` removes it. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fsw-dedup-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `data` at `dir/rel`, creating parents; returns the full path. */
export function put(dir: string, rel: string, data: Uint8Array | string): string {
  const path = join(dir, rel);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
  return path;
}

/** `n` random bytes. */
export function bytes(n: number): Buffer {
  return randomBytes(n);
}

/** A copy of `data` with the byte at `at` changed. */
export function flip(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = (copy[at]! + 1) & 0xff;
  return copy;
}

/** An `onError` that skips every failure, and the failures it saw. */
export function skipping(): {
  errors: { code?: string; path?: string }[];
  onError: (e: { code?: string; path?: string }) => 'skip';
} {
  const errors: { code?: string; path?: string }[] = [];
  return {
    errors,
    onError: (e) => {
      errors.push(e);
      return 'skip';
    },
  };
}
