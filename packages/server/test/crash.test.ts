import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientWritableStream } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bytesOf,
  CacheClient,
  digestOf,
  startServer,
  storedObjects,
  strayFiles,
  tempDir,
} from './helpers.js';

const SERVE = fileURLToPath(new URL('./fixtures/serve.mjs', import.meta.url));
let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});

afterEach(async () => {
  await cleanup();
});

/** Sizes of the partial uploads the server is holding in temp files. */
async function tempFileSizes(): Promise<number[]> {
  const root = join(dir, '.fsw-server-tmp');
  const sizes: number[] = [];
  for (const sub of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, sub)).catch(() => [])) {
      sizes.push((await stat(join(root, sub, name)).catch(() => ({ size: 0 }))).size);
    }
  }
  return sizes;
}

describe('a server killed mid-upload', () => {
  it('leaves only complete, verified objects, and cleans up after itself on restart', async () => {
    const child = spawn(process.execPath, [SERVE, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0] as string);
        });
        child.on('exit', (code) => reject(new Error(`server exited early (${code})`)));
      });
      const { grpc, http } = JSON.parse(line) as { grpc: string; http: string };

      const complete = bytesOf(100_000, 1);
      const completeDigest = await digestOf(complete);
      expect(
        (await fetch(`${http}/objects/${completeDigest}`, { method: 'PUT', body: complete as BodyInit }))
          .status,
      ).toBe(201);

      // An HTTP upload and a gRPC upload, each stopped halfway (2 MiB of 4 MiB sent).
      const big = bytesOf(4 * 1024 * 1024, 2);
      const bigDigest = await digestOf(big);
      const req = request(`${http}/objects/${bigDigest}`, {
        method: 'PUT',
        headers: { 'content-length': big.length },
      });
      req.on('error', () => undefined);
      req.write(big.subarray(0, 2 * 1024 * 1024));

      const other = bytesOf(4 * 1024 * 1024, 3);
      const otherDigest = await digestOf(other);
      const client = new CacheClient(grpc);
      const call = client.client.WriteObject(client.metadata, () => undefined) as ClientWritableStream<{
        digest: string;
        data: Uint8Array;
      }>;
      call.on('error', () => undefined);
      for (let offset = 0; offset < 2 * 1024 * 1024; offset += 64 * 1024) {
        call.write({ digest: otherDigest, data: other.subarray(offset, offset + 64 * 1024) });
      }

      // Both partial bodies have reached the server's temp files.
      await expect
        .poll(async () => (await tempFileSizes()).filter((s) => s >= 1024 * 1024).length, { timeout: 20_000 })
        .toBe(2);
      child.kill('SIGKILL');
      await exited;
      client.close();
      req.destroy();

      // Only the complete object is in the store, and it is intact.
      const stored = await storedObjects(dir);
      expect([...stored.keys()]).toEqual([completeDigest]);
      expect(stored.get(completeDigest)?.equals(complete)).toBe(true);
      expect((await strayFiles(dir)).length).toBe(2);

      // A new server on the same store removes the dead server's temp files and serves the right answers.
      const server = await startServer(dir);
      try {
        expect(await strayFiles(dir)).toEqual([]);
        const base = server.addresses.http?.url as string;
        expect((await fetch(`${base}/objects/${bigDigest}`, { method: 'HEAD' })).status).toBe(404);
        expect((await fetch(`${base}/objects/${otherDigest}`, { method: 'HEAD' })).status).toBe(404);
        expect((await fetch(`${base}/objects/${completeDigest}`, { method: 'HEAD' })).status).toBe(200);
        // The interrupted upload, run again, completes.
        expect(
          (await fetch(`${base}/objects/${bigDigest}`, { method: 'PUT', body: big as BodyInit })).status,
        ).toBe(201);
        expect((await storedObjects(dir)).get(bigDigest)?.equals(big)).toBe(true);
      } finally {
        await server.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
