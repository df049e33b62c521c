import { readFile, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { HashError } from '@fsw/errors';
import type { HashAlgorithm, HashResult } from '@fsw/hash';
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { outputFor, withOutputOptions } from '../context.js';
import { parseCount, UsageError } from '../format.js';
import type { Output } from '../output.js';
import type { Register } from './index.js';

const ALGORITHMS = ['blake3', 'sha256', 'sha512', 'sha1', 'md5', 'xxh3', 'xxh128', 'xxh64', 'crc32'] as const;

// Tags of the BSD format (`SHA256 (file) = hex`), as written by `sha256sum --tag`, `b3sum --tag`, `xxhsum --tag`.
const TAGS: Readonly<Record<string, HashAlgorithm>> = {
  BLAKE3: 'blake3',
  SHA256: 'sha256',
  SHA512: 'sha512',
  SHA1: 'sha1',
  MD5: 'md5',
  XXH3: 'xxh3',
  XXH128: 'xxh128',
  XXH64: 'xxh64',
  CRC32: 'crc32',
};

interface HashFlags {
  algo: string;
  recursive?: boolean;
  check?: string;
  jobs?: string;
  json?: boolean;
  quiet?: boolean;
}

/** Lines gathered before one write to stdout. */
const CHUNK = 64 * 1024;

/** Buffers output lines; stops quietly when the reader goes away (`fsw hash -r . | head`: EPIPE). */
class LineWriter {
  private buffer = '';
  /** True once stdout is closed by the reader: the caller stops hashing. */
  closed = false;
  constructor(private readonly stream: Writable) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      this.closed = true;
    });
  }
  async line(text: string): Promise<void> {
    this.buffer += `${text}\n`;
    if (this.buffer.length >= CHUNK) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.buffer === '' || this.closed) return;
    const data = this.buffer;
    this.buffer = '';
    if (!this.stream.write(data)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.stream.off('drain', done);
          this.stream.off('error', done);
          resolve();
        };
        this.stream.on('drain', done);
        this.stream.on('error', done);
      });
    }
  }
}

/** The name as `sha256sum` prints it: a name with a backslash or newline is escaped and the line starts with `\`. */
function escapeName(name: string): { prefix: string; name: string } {
  if (!/[\\\n\r]/.test(name)) return { prefix: '', name };
  return { prefix: '\\', name: name.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r') };
}

function unescapeName(name: string): string {
  return name.replace(/\\(\\|n|r)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

function sumLine(digest: string, path: string): string {
  const e = escapeName(path);
  return `${e.prefix}${digest}  ${e.name}`;
}

function parseAlgorithm(name: string): HashAlgorithm {
  const lower = name.toLowerCase();
  if ((ALGORITHMS as readonly string[]).includes(lower)) return lower as HashAlgorithm;
  throw new UsageError(`unknown algorithm '${name}' (expected one of ${ALGORITHMS.join(', ')})`);
}

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream)
    parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Hashes stdin as it streams in. */
async function hashStdin(algorithm: HashAlgorithm): Promise<HashResult> {
  const { createHasher } = await import('@fsw/hash');
  const hasher = await createHasher(algorithm);
  let size = 0;
  for await (const chunk of process.stdin) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
    size += bytes.length;
    hasher.update(bytes);
  }
  return { path: '-', algorithm, digest: hasher.digest(), size, engine: hasher.engine };
}

type Outcome = { readonly path: string } & (
  | { readonly result: HashResult; readonly error?: undefined }
  | { readonly error: HashError; readonly result?: undefined }
);

/**
 * Hashes `paths` (possibly produced lazily, e.g. by a walk) and yields each path's result or error in input order.
 * `'-'` stands for `stdin`, hashed beforehand. `hashFilesIter({ ordered: true })` leaves out the files `onError`
 * skips; since it settles earlier inputs first, every queued path before a result's position is a failed one.
 */
async function* hashInOrder(
  paths: readonly string[] | AsyncIterable<string>,
  algorithm: HashAlgorithm,
  concurrency: number | undefined,
  stdin: HashResult | undefined,
  onProgress: ((p: { bytesDone: number; bytesTotal: number }) => void) | undefined,
): AsyncGenerator<Outcome> {
  const { hashFilesIter } = await import('@fsw/hash');
  const queue: string[] = [];
  let head = 0;
  const errors = new Map<string, HashError[]>();
  async function* tracked() {
    for await (const p of paths as AsyncIterable<string>) {
      queue.push(p);
      if (p !== '-' || stdin === undefined) yield p;
    }
  }
  const settle = (path: string): Outcome => {
    if (path === '-' && stdin !== undefined) return { path, result: stdin };
    const error = errors.get(path)?.shift() ?? new HashError('E_IO', `cannot hash ${path}`, { path });
    return { path, error };
  };
  // An array goes in as one: the library then knows the count (a single file is hashed without worker threads).
  const input = Array.isArray(paths) ? paths.filter((p) => p !== '-' || stdin === undefined) : tracked();
  if (Array.isArray(paths)) queue.push(...paths);
  for await (const result of hashFilesIter(input, {
    algorithm,
    ordered: true,
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(onProgress !== undefined ? { onProgress } : {}),
    onError: (error) => {
      const key = error.path ?? '';
      errors.set(key, [...(errors.get(key) ?? []), error]);
      return 'skip';
    },
  })) {
    while (head < queue.length && queue[head] !== result.path) yield settle(queue[head++]!);
    head++;
    // Drop what was printed, so that a walk of millions of files does not keep every path.
    if (head >= 4096) {
      queue.splice(0, head);
      head = 0;
    }
    yield { path: result.path, result };
  }
  while (head < queue.length) yield settle(queue[head++]!);
}

/** Expands the command line's paths: directories through `@fsw/walk` with `-r`, `-` left as is. */
async function* expand(paths: readonly string[], out: Output): AsyncGenerator<string> {
  for (const p of paths) {
    if (p === '-') {
      yield p;
      continue;
    }
    let isDir = false;
    try {
      isDir = (await stat(p)).isDirectory();
    } catch {
      // Not there or unreadable: hashing it reports the error in the usual form.
    }
    if (!isDir) {
      yield p;
      continue;
    }
    const { walk } = await import('@fsw/walk');
    for await (const entry of walk(p, {
      type: 'file',
      sort: true,
      onError: (error) => {
        out.warn(error.message);
        return 'skip';
      },
    })) {
      if (entry.rawPath !== undefined) {
        out.warn(`skipping ${entry.path}: its name is not valid UTF-8`);
        continue;
      }
      yield entry.path;
    }
  }
}

async function runHash(ctx: CommandContext, paths: readonly string[], flags: HashFlags): Promise<void> {
  const out = outputFor(ctx, flags);
  const algorithm = parseAlgorithm(flags.algo);
  const concurrency = flags.jobs === undefined ? undefined : Math.max(1, parseCount(flags.jobs, 'job count'));
  const list = paths.length === 0 ? ['-'] : paths;
  if (list.filter((p) => p === '-').length > 1) throw new UsageError("'-' (stdin) may be given only once");
  const writer = new LineWriter(ctx.io.stdout);
  const emit = async (r: HashResult) => {
    if (out.json) {
      await writer.line(JSON.stringify(r));
    } else {
      await writer.line(sumLine(r.digest, r.path));
    }
  };
  // stdin is read first, so that the files can be hashed in one parallel batch; output keeps the argument order.
  const stdinResult = list.includes('-') ? await hashStdin(algorithm) : undefined;
  const bar = out.progress({ unit: 'bytes', label: algorithm });
  // Progress costs a stat of every listed file up front: ask for it only when a bar is drawn (the rule of
  // Output.progress: stderr is a terminal, no --json/--quiet, not CI).
  const drawn = !out.json && !out.quiet && ctx.io.stderr.isTTY === true && ctx.io.env.CI !== 'true';
  try {
    for await (const o of hashInOrder(
      flags.recursive === true ? expand(list, out) : list,
      algorithm,
      concurrency,
      stdinResult,
      drawn
        ? (p) => {
            bar.setTotal(p.bytesTotal);
            bar.update(p.bytesDone);
          }
        : undefined,
    )) {
      // Leaving the loop cancels the files still being hashed.
      if (writer.closed) break;
      if (o.result !== undefined) {
        await emit(o.result);
      } else {
        await writer.flush();
        out.warn(o.error.message);
      }
    }
  } finally {
    bar.stop();
    await writer.flush();
  }
  ctx.setExitCode(out.failed ? 1 : 0);
}

interface CheckEntry {
  readonly line: number;
  readonly path: string;
  readonly digest: string;
  readonly algorithm: HashAlgorithm;
}

function parseCheckList(text: string, fallback: HashAlgorithm): { entries: CheckEntry[]; bad: number } {
  const entries: CheckEntry[] = [];
  let bad = 0;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((raw, i) => {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('#')) return;
    const escaped = line.startsWith('\\');
    if (escaped) line = line.slice(1);
    const gnu = /^([0-9a-fA-F]+) [ *](.+)$/.exec(line);
    const bsd = /^([A-Za-z0-9]+) \((.+)\) = ([0-9a-fA-F]+)$/.exec(line);
    let entry: CheckEntry | undefined;
    if (gnu !== null) {
      entry = { line: i + 1, digest: gnu[1]!.toLowerCase(), path: gnu[2]!, algorithm: fallback };
    } else if (bsd !== null && TAGS[bsd[1]!.toUpperCase()] !== undefined) {
      entry = {
        line: i + 1,
        digest: bsd[3]!.toLowerCase(),
        path: bsd[2]!,
        algorithm: TAGS[bsd[1]!.toUpperCase()]!,
      };
    }
    if (entry === undefined) {
      bad++;
      return;
    }
    entries.push(escaped ? { ...entry, path: unescapeName(entry.path) } : entry);
  });
  return { entries, bad };
}

async function runCheck(ctx: CommandContext, listFile: string, flags: HashFlags): Promise<void> {
  const out = outputFor(ctx, flags);
  const fallback = parseAlgorithm(flags.algo);
  const concurrency = flags.jobs === undefined ? undefined : Math.max(1, parseCount(flags.jobs, 'job count'));
  let text: string;
  try {
    text =
      listFile === '-' ? (await readAll(process.stdin)).toString('utf8') : await readFile(listFile, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${listFile}: ${(e as Error).message}`);
  }
  const { entries, bad } = parseCheckList(text, fallback);
  if (entries.length === 0) {
    out.warn(`${listFile}: no properly formatted checksum lines found`);
    ctx.setExitCode(1);
    return;
  }
  const writer = new LineWriter(ctx.io.stdout);
  let mismatched = 0;
  let unreadable = 0;
  // Entries are hashed in runs of one algorithm (a list of one format has a single run).
  let i = 0;
  while (i < entries.length) {
    const algorithm = entries[i]!.algorithm;
    let j = i;
    while (j < entries.length && entries[j]!.algorithm === algorithm) j++;
    const run = entries.slice(i, j);
    let k = 0;
    for await (const o of hashInOrder(
      run.map((e) => e.path),
      algorithm,
      concurrency,
      undefined,
      undefined,
    )) {
      const entry = run[k++]!;
      const shown = escapeName(entry.path);
      if (o.error !== undefined) {
        unreadable++;
        await writer.flush();
        out.warn(o.error.message);
        if (out.json) await writer.line(JSON.stringify({ path: entry.path, ok: false, error: o.error.code }));
        else await writer.line(`${shown.prefix}${shown.name}: FAILED open or read`);
        continue;
      }
      const ok = o.result.digest === entry.digest;
      if (!ok) mismatched++;
      if (out.json) {
        await writer.line(
          JSON.stringify({
            path: entry.path,
            ok,
            algorithm,
            expected: entry.digest,
            actual: o.result.digest,
          }),
        );
      } else if (!ok || !out.quiet) {
        await writer.line(`${shown.prefix}${shown.name}: ${ok ? 'OK' : 'FAILED'}`);
      }
    }
    i = j;
  }
  await writer.flush();
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  if (bad > 0) out.warn(`WARNING: ${plural(bad, 'line is', 'lines are')} improperly formatted`);
  if (unreadable > 0)
    out.warn(`WARNING: ${plural(unreadable, 'listed file', 'listed files')} could not be read`);
  if (mismatched > 0) {
    out.warn(`WARNING: ${plural(mismatched, 'computed checksum', 'computed checksums')} did NOT match`);
  }
  // Malformed lines alone are a warning (as in sha256sum without --strict); mismatches and unreadable files fail.
  ctx.setExitCode(mismatched > 0 || unreadable > 0 ? 1 : 0);
}

/** `fsw hash [PATH...]`: prints `<hex>  <path>` lines (the sha256sum/b3sum format), or verifies a list with --check. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    program
      .command('hash')
      .description('hash files (blake3 by default), printing sha256sum-style lines; --check verifies a list')
      .argument('[path...]', "files to hash; '-' or nothing reads stdin")
      .option('-a, --algo <name>', `algorithm: ${ALGORITHMS.join(', ')}`, 'blake3')
      .option('-r, --recursive', 'hash every regular file under directories (sorted by name)')
      .option(
        '-c, --check <file>',
        "verify the checksums listed in FILE ('-' for stdin), like sha256sum -c; plain lines use --algo, BSD tags name theirs",
      )
      .option('-j, --jobs <n>', 'files hashed at once (default: one per core)'),
  ).action(async (paths: string[], flags: HashFlags) => {
    if (flags.check !== undefined) {
      if (paths.length > 0) throw new UsageError('--check takes the list file only, not paths');
      await runCheck(ctx, flags.check, flags);
      return;
    }
    await runHash(ctx, paths, flags);
  });
};
