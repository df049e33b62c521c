import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openRemote, pull, push } from '@fsw/remote';
import { openStore } from '@fsw/tree';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { putSpec, reachable, sampleSpec, tempDir } from './helpers/fixtures.js';

/**
 * A plain share keyed by request path (what a WebDAV folder or a static file server is): `PUT` stores the body under
 * the decoded path, `HEAD`/`GET` serve it. It knows nothing of digests, so a client only finds what it wrote under
 * exactly the path it asks for.
 */
async function startShare() {
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.push(`${req.method} ${path}`);
      if (req.method === 'PUT') {
        files.set(path, Buffer.concat(chunks));
        res.writeHead(201).end();
        return;
      }
      const body = files.get(path);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/cache`,
    files,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Where the fstree C++ client (checked against a build of it) puts digest `s` under base `/cache`. */
const realClientPath = (s: string) => `/cache/${s.slice(0, 2)}/${s.slice(2, 8)}/${s.slice(6)}`;

let tmp: { dir: string; cleanup: () => Promise<void> };
let share: Awaited<ReturnType<typeof startShare>>;

beforeEach(async () => {
  tmp = await tempDir();
  share = await startShare();
});
afterEach(async () => {
  await share.close();
  await tmp.cleanup();
});

describe("httpLayout 'fstree' on a plain share", () => {
  it('writes every object at the path the real fstree client reads: <base>/bl/ake3:X/:<hex>', async () => {
    const local = openStore(join(tmp.dir, 'local'));
    const root = await putSpec(local, sampleSpec(3));
    const remote = openRemote(share.url, { httpLayout: 'fstree', retryDelayMs: 5 });
    try {
      await push(local, remote, root);
    } finally {
      await remote.close();
    }
    const all = await reachable(local, root);
    const expected = [...all.trees, ...all.files].map(realClientPath).sort();
    expect([...share.files.keys()].sort()).toEqual(expected);
    expect(realClientPath(root)).toMatch(/^\/cache\/bl\/ake3:[0-9a-f]\/:[0-9a-f]{64}$/);
    for (const d of [...all.trees, ...all.files]) {
      expect(share.files.get(realClientPath(d))?.equals(Buffer.from(await local.get(d))), d).toBe(true);
    }
  });

  it('pulls a tree that the fstree client laid out on the share', async () => {
    const local = openStore(join(tmp.dir, 'local'));
    const root = await putSpec(local, sampleSpec(4));
    const all = await reachable(local, root);
    // Laid out as the real client's PUTs leave it, without going through our path code.
    for (const d of [...all.trees, ...all.files])
      share.files.set(realClientPath(d), Buffer.from(await local.get(d)));
    const back = openStore(join(tmp.dir, 'back'));
    const remote = openRemote(share.url, { httpLayout: 'fstree', retryDelayMs: 5 });
    try {
      const pulled = await pull(remote, back, root);
      expect(pulled.objectsDownloaded).toBe(all.trees.length + all.files.length);
    } finally {
      await remote.close();
    }
    expect(
      share.requests.filter((r) => r.startsWith('GET ')).every((r) => /\/ake3:[0-9a-f]\/:/.test(r)),
    ).toBe(true);
  });
});
