import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type CacheServer, createServer } from '@fsw/server';
import { openStore } from '@fsw/tree';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFsw } from './run-fsw.js';

// fsw push / pull / write-tree-push / pull-checkout against a real @fsw/server on 127.0.0.1.
const VECTORS = resolve(import.meta.dirname, '../../tree/test/fixtures/fstree-vectors.sh');
const BASIC = 'blake3:077e66938168aa46e05b274c044f4bdec0eeeac15deeed621e077755c90eece9';
const IGNORE = 'blake3:99af46374945808eec71de1df182d48c065bce036b93627d75a7343b8e7bbe55';

let tmp: string;
let server: CacheServer;
const env = (cache: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  FSTREE_CACHE: join(tmp, cache),
  FSTREE_IGNORE: '',
  FSTREE_THREADS: '',
  FSTREE_REMOTE: server.addresses.grpc!.url,
  FSW_TOKEN: 'cli-token',
  ...extra,
});

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fsw-cli-push-'));
  execFileSync('bash', [VECTORS, join(tmp, 'v')]);
  server = await createServer({
    dir: join(tmp, 'server'),
    grpc: { port: 0 },
    http: { port: 0 },
    token: 'cli-token',
  });
});
afterAll(async () => {
  await server?.close({ graceMs: 0 });
  await rm(tmp, { recursive: true, force: true });
});

describe('fsw write-tree-push, pull-checkout, push, pull', () => {
  it('write-tree-push stores and uploads a folder, printing its root digest (FSTREE_REMOTE, FSW_TOKEN)', async () => {
    const r = await runFsw(['write-tree-push', join(tmp, 'v/basic')], { env: env('c1') });
    expect(r).toMatchObject({ code: 0, stdout: `${BASIC}\n`, stderr: '' });
    expect(await openStore(server.dir).has(BASIC)).toBe(true);
  });

  it('pull-checkout recreates the folder from the remote into a fresh cache', async () => {
    const dest = join(tmp, 'out-basic');
    const r = await runFsw(['pull-checkout', BASIC, dest], { env: env('c2') });
    expect(r).toMatchObject({ code: 0, stdout: `${BASIC}\n` });
    expect(await readFile(join(dest, 'hello.txt'), 'utf8')).toBe('hello world\n');
    expect(await readFile(join(dest, 'sub/deeper/nested.txt'), 'utf8')).toBe('nested file\n');
    // The folder written back hashes to the same tree.
    const again = await runFsw(['write-tree', '--no-index', dest], { env: env('c3') });
    expect(again.stdout).toBe(`${BASIC}\n`);
  });

  it('push and pull take --remote (HTTP here), --token and --json', async () => {
    const http = server.addresses.http!.url;
    const wrote = await runFsw(['write-tree', join(tmp, 'v/ignore')], { env: env('c4') });
    expect(wrote.stdout).toBe(`${IGNORE}\n`);
    const pushed = await runFsw(['push', IGNORE, '--remote', http, '--token', 'cli-token', '--json'], {
      env: env('c4', { FSW_TOKEN: '' }),
    });
    expect(pushed.code).toBe(0);
    expect(JSON.parse(pushed.stdout)).toMatchObject({ digest: IGNORE, remote: http });
    expect(JSON.parse(pushed.stdout).objectsUploaded).toBeGreaterThan(3);

    const pulled = await runFsw(['pull', IGNORE, '--remote', http, '--json'], { env: env('c5') });
    expect(pulled.code).toBe(0);
    // A fresh cache gets every object of the tree (some were on the server before this push).
    expect(JSON.parse(pulled.stdout)).toMatchObject({
      digest: IGNORE,
      objectsDownloaded: 10,
      objectsPresent: 0,
    });
    expect(await openStore(join(tmp, 'c5')).has(IGNORE)).toBe(true);
  });

  it('fails with exit 1 and a clear message on a wrong token', async () => {
    const r = await runFsw(['pull', BASIC], { env: env('c6', { FSW_TOKEN: 'wrong' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fsw: .*refused/m);
  });

  it('fails fast with exit 1 when the remote is down', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const r = await runFsw(['push', BASIC, '--remote', `jolt://127.0.0.1:${port}`], { env: env('c1') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^fsw: .*unavailable/im);
  });

  it('rejects a malformed digest with exit 2', async () => {
    const r = await runFsw(['pull', 'not-a-digest'], { env: env('c7') });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid digest');
  });
});
