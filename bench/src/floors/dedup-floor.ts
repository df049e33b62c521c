/**
 * The floor of a duplicate search in Node.js: the least work any Node.js process must do on the benchmark's trees,
 * written as bare as possible (one module, synchronous calls, no options, no error handling, no hard-link or
 * symlink handling), to tell what is out of reach of any implementation from what is left to gain.
 *
 *   node dist/floors/dedup-floor.js full DIR     list, lstat, group by size, CRC-32 of the head and tail 4 KiB of
 *                                                every file of a shared size, then each remaining pair read side by
 *                                                side with one file hashed (native BLAKE3), groups of 3+ hashed whole
 *   node dist/floors/dedup-floor.js cached DIR   list and lstat only: what a run with a digest cache must still do
 *
 * `FLOOR_THREADS=2` adds one worker thread (started first, as a real tool would): in `full`, it takes every other
 * group of the last step; in `cached`, every other top-level directory. Prints the number of duplicate groups (or of
 * files).
 */
import { closeSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { crc32 } from 'node:zlib';

interface Blake3 {
  update(data: Uint8Array): void;
  digest(format: 'hex'): string;
}
/** Native BLAKE3, loaded only by a full run (the cached floor loads nothing it does not use). */
const blake3 = () =>
  (
    createRequire(createRequire(import.meta.url).resolve('@fsw/hash/package.json'))(
      '@napi-rs/blake-hash',
    ) as {
      Blake3Hasher: new () => Blake3;
    }
  ).Blake3Hasher;

const CHUNK = 1 << 20;
type Group = { size: number; paths: string[] };

/** Full-content keys of one group: a pair side by side (one file hashed), else each file hashed whole. */
function finish(groups: readonly Group[]): number {
  const Blake3Hasher = blake3();
  const a = Buffer.allocUnsafe(CHUNK);
  const b = Buffer.allocUnsafe(CHUNK);
  let found = 0;
  for (const { size, paths } of groups) {
    if (paths.length === 2) {
      const fa = openSync(paths[0]!, 'r');
      const fb = openSync(paths[1]!, 'r');
      const h = new Blake3Hasher();
      let equal = true;
      for (let at = 0; at < size; at += CHUNK) {
        const n = readSync(fa, a, 0, CHUNK, at);
        readSync(fb, b, 0, CHUNK, at);
        if (a.compare(b, 0, n, 0, n) !== 0) {
          equal = false;
          break;
        }
        h.update(a.subarray(0, n));
      }
      closeSync(fa);
      closeSync(fb);
      if (equal && h.digest('hex') !== '') found++;
      continue;
    }
    const seen = new Set<string>();
    for (const path of paths) {
      const fd = openSync(path, 'r');
      const h = new Blake3Hasher();
      for (let at = 0; at < size; at += CHUNK) h.update(a.subarray(0, readSync(fd, a, 0, CHUNK, at)));
      closeSync(fd);
      const digest = h.digest('hex');
      if (seen.has(digest)) found++;
      seen.add(digest);
    }
  }
  return found;
}

function listStat(dirs: string[], out: { path: string; size: number }[]): void {
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory()) dirs.push(path);
      else if (e.isFile()) out.push({ path, size: lstatSync(path).size });
    }
  }
}

if (!isMainThread) {
  parentPort!.once('message', (job: { op: 'full'; groups: Group[] } | { op: 'cached'; dirs: string[] }) => {
    if (job.op === 'full') parentPort!.postMessage(finish(job.groups));
    else {
      const files: { path: string; size: number }[] = [];
      listStat(job.dirs, files);
      parentPort!.postMessage(files.length);
    }
  });
} else {
  const [mode, root] = process.argv.slice(2);
  if ((mode !== 'full' && mode !== 'cached') || root === undefined) {
    process.stderr.write('usage: dedup-floor.js full|cached DIR\n');
    process.exit(2);
  }
  const worker = process.env.FLOOR_THREADS === '2' ? new Worker(new URL(import.meta.url)) : undefined;
  const files: { path: string; size: number }[] = [];
  if (mode === 'cached') {
    const top = readdirSync(root, { withFileTypes: true });
    const mine: string[] = [];
    const theirs: string[] = [];
    for (const e of top) {
      const path = `${root}/${e.name}`;
      if (e.isDirectory()) (worker !== undefined && mine.length > theirs.length ? theirs : mine).push(path);
      else if (e.isFile()) files.push({ path, size: lstatSync(path).size });
    }
    worker?.postMessage({ op: 'cached', dirs: theirs });
    listStat(mine, files);
    if (worker === undefined) console.log(files.length);
    else {
      worker.once('message', (n: number) => {
        console.log(files.length + n);
        void worker.terminate();
      });
    }
  } else {
    listStat([root], files);
    const bySize = new Map<number, string[]>();
    for (const f of files) {
      const same = bySize.get(f.size);
      if (same === undefined) bySize.set(f.size, [f.path]);
      else same.push(f.path);
    }
    const buffer = Buffer.allocUnsafe(8192);
    const left: Group[] = [];
    for (const [size, paths] of bySize) {
      if (paths.length < 2 || size === 0) continue;
      const byCrc = new Map<number, string[]>();
      for (const path of paths) {
        const fd = openSync(path, 'r');
        let n = readSync(fd, buffer, 0, Math.min(4096, size), 0);
        if (size > 4096) n += readSync(fd, buffer, n, 4096, Math.max(4096, size - 4096));
        closeSync(fd);
        const key = crc32(buffer.subarray(0, n));
        const same = byCrc.get(key);
        if (same === undefined) byCrc.set(key, [path]);
        else same.push(path);
      }
      for (const same of byCrc.values()) if (same.length >= 2) left.push({ size, paths: same });
    }
    if (worker === undefined) console.log(finish(left));
    else {
      worker.postMessage({ op: 'full', groups: left.filter((_, i) => i % 2 === 1) });
      const mine = finish(left.filter((_, i) => i % 2 === 0));
      worker.once('message', (n: number) => {
        console.log(mine + n);
        void worker.terminate();
      });
    }
  }
}
