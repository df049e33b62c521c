import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ALGORITHMS, type HashAlgorithm, hashBytes } from '@fsw/hash';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const here = fileURLToPath(new URL('.', import.meta.url));

// The page bundles the package the way a web app would (esbuild, platform browser: the `browser` condition),
// then hashes a generated File, a Blob stream and the raw bytes with every algorithm.
const PAGE_SCRIPT = `
import { ALGORITHMS, engines, hashBlob, hashBytes, hashStream } from '@fsw/hash';
globalThis.runHashes = async (length) => {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 9)) & 0xff;
  const file = new File([bytes], 'generated.bin', { type: 'application/octet-stream' });
  const out = {};
  for (const algorithm of ALGORITHMS) {
    out[algorithm] = {
      file: await hashBlob(file, { algorithm }),
      stream: await hashStream(new Blob([bytes]).stream(), { algorithm }),
      bytes: await hashBytes(bytes, { algorithm }),
    };
  }
  return { engines: engines(), out, hasProcess: typeof process !== 'undefined' };
};
document.title = 'ready';
`;

function generated(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + (i >> 9)) & 0xff;
  return bytes;
}

let server: Server;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  const bundle = await build({
    stdin: { contents: PAGE_SCRIPT, resolveDir: here, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.text;
  server = createServer((req, res) => {
    if (req.url === '/app.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    } else {
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><title>loading</title><script type="module" src="/app.js"></script>');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
});

describe('the browser entry in headless Chromium', () => {
  it('hashes a generated File, a stream and bytes to the digests Node computes', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(origin);
    await page.waitForFunction(() => document.title === 'ready');
    const length = 3 * 1024 * 1024 + 17;
    const got = (await page.evaluate(
      (n) => (globalThis as unknown as { runHashes(n: number): Promise<unknown> }).runHashes(n),
      length,
    )) as {
      engines: Record<HashAlgorithm, string>;
      out: Record<HashAlgorithm, { file: string; stream: string; bytes: string }>;
      hasProcess: boolean;
    };
    expect(errors).toEqual([]);
    expect(got.hasProcess).toBe(false);
    const bytes = generated(length);
    for (const algorithm of ALGORITHMS) {
      const want = await hashBytes(bytes, { algorithm });
      expect(got.engines[algorithm]).toBe('hash-wasm');
      expect(got.out[algorithm], algorithm).toEqual({ file: want, stream: want, bytes: want });
    }
    await page.close();
  }, 60_000);
});
