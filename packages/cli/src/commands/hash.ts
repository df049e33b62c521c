import { readFile, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { HashAlgorithm, HashFileEntry, HashResult } from '@fsw/hash';
import type { WalkEntry } from '@fsw/walk';
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
  /** Adds a line without writing: the caller flushes once per stretch of lines ({@link flushIfFull}). */
  add(text: string): void {
    this.buffer += `${text}\n`;
  }
  async flushIfFull(): Promise<void> {
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

type Progress = (p: { bytesDone: number; bytesTotal: number }) => void;

/** The hashing options the command passes on. */
interface RunOptions {
  readonly algorithm: HashAlgorithm;
  readonly concurrency: number | undefined;
  readonly onProgress: Progress | undefined;
}

/** Hashes batches of paths, yielding stretches of `{ path, result } | { path, error }` in input order. */
async function* hashBatches(
  batches: Iterable<readonly string[]> | AsyncIterable<readonly string[]>,
  options: RunOptions,
): AsyncGenerator<HashFileEntry[]> {
  const { hashFileBatches } = await import('@fsw/hash');
  yield* hashFileBatches(batches, {
    algorithm: options.algorithm,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.onProgress !== undefined ? { onProgress: options.onProgress } : {}),
  });
}

/**
 * The files under `root`, depth-first with siblings in name order (the order of `walk`'s `sort`), one batch per
 * directory: each directory is listed by a one-level `walk` (its filters, errors and non-UTF-8 names as usual) and
 * sorted here. A sorted `walk` hands out one entry per batch, which costs a promise round trip per file.
 */
async function* walkBatches(root: string, out: Output): AsyncGenerator<string[]> {
  const { walk } = await import('@fsw/walk');
  const onError = (error: { message: string }) => {
    out.warn(error.message);
    return 'skip' as const;
  };
  async function* directory(path: string, isRoot: boolean): AsyncGenerator<string[]> {
    const items: WalkEntry[] = [];
    try {
      for await (const batch of walk(path, { maxDepth: 1, syncReaddir: true, onError }).batches())
        items.push(...batch);
    } catch (error) {
      // The command line's own directory fails the command, as any unreadable argument; one below it is skipped.
      if (isRoot) throw error;
      onError(error as Error);
      return;
    }
    items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let files: string[] = [];
    for (const entry of items) {
      if (entry.type !== 'file' && entry.type !== 'dir') continue;
      if (entry.rawPath !== undefined) {
        out.warn(`skipping ${entry.path}: its name is not valid UTF-8`);
        continue;
      }
      if (entry.type === 'file') {
        files.push(entry.path);
        continue;
      }
      if (files.length > 0) yield files;
      files = [];
      yield* directory(entry.path, false);
    }
    if (files.length > 0) yield files;
  }
  yield* directory(root, true);
}

/**
 * The command line's paths as groups hashed one after the other, in argument order: a run of plain paths (hashed
 * as one parallel batch), a directory walked with `-r`, or `-` (stdin, hashed beforehand).
 */
type Group =
  | { readonly kind: 'files'; readonly paths: string[] }
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'stdin' };

async function groupsOf(paths: readonly string[], recursive: boolean): Promise<Group[]> {
  const groups: Group[] = [];
  let files: string[] | undefined;
  for (const p of paths) {
    let isDir = false;
    if (p !== '-' && recursive) {
      try {
        isDir = (await stat(p)).isDirectory();
      } catch {
        // Not there or unreadable: hashing it reports the error in the usual form.
      }
    }
    if (p !== '-' && !isDir) {
      if (files === undefined) {
        files = [];
        groups.push({ kind: 'files', paths: files });
      }
      files.push(p);
      continue;
    }
    files = undefined;
    groups.push(p === '-' ? { kind: 'stdin' } : { kind: 'dir', path: p });
  }
  return groups;
}

async function runHash(ctx: CommandContext, paths: readonly string[], flags: HashFlags): Promise<void> {
  const out = outputFor(ctx, flags);
  const algorithm = parseAlgorithm(flags.algo);
  const concurrency = flags.jobs === undefined ? undefined : Math.max(1, parseCount(flags.jobs, 'job count'));
  const list = paths.length === 0 ? ['-'] : paths;
  if (list.filter((p) => p === '-').length > 1) throw new UsageError("'-' (stdin) may be given only once");
  const writer = new LineWriter(ctx.io.stdout);
  const add = (r: HashResult) => writer.add(out.json ? JSON.stringify(r) : sumLine(r.digest, r.path));
  // stdin is read first, so that the files can be hashed in parallel batches; output keeps the argument order.
  const stdinResult = list.includes('-') ? await hashStdin(algorithm) : undefined;
  const bar = out.progress({ unit: 'bytes', label: algorithm });
  // Progress costs a stat of every listed file up front: ask for it only when a bar is drawn (the rule of
  // Output.progress: stderr is a terminal, no --json/--quiet, not CI).
  const drawn = !out.json && !out.quiet && ctx.io.stderr.isTTY === true && ctx.io.env.CI !== 'true';
  // Groups are hashed one after the other: the bar adds up their bytes.
  let doneBefore = 0;
  let totalBefore = 0;
  let last = { bytesDone: 0, bytesTotal: 0 };
  const onProgress: Progress | undefined = drawn
    ? (p) => {
        last = p;
        bar.setTotal(totalBefore + p.bytesTotal);
        bar.update(doneBefore + p.bytesDone);
      }
    : undefined;
  try {
    for (const group of await groupsOf(list, flags.recursive === true)) {
      if (group.kind === 'stdin') {
        if (stdinResult !== undefined) add(stdinResult);
        continue;
      }
      const batches = group.kind === 'files' ? [group.paths] : walkBatches(group.path, out);
      // Leaving the loop cancels the files still being hashed.
      for await (const entries of hashBatches(batches, { algorithm, concurrency, onProgress })) {
        for (const entry of entries) {
          if (entry.result !== undefined) {
            add(entry.result);
          } else {
            await writer.flush();
            out.warn(entry.error.message);
          }
        }
        if (writer.closed) break;
        await writer.flushIfFull();
      }
      doneBefore += last.bytesDone;
      totalBefore += last.bytesTotal;
      last = { bytesDone: 0, bytesTotal: 0 };
      if (writer.closed) break;
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
    const paths = run.map((e) => e.path);
    for await (const stretch of hashBatches([paths], { algorithm, concurrency, onProgress: undefined })) {
      for (const o of stretch) {
        const entry = run[k++]!;
        const shown = escapeName(entry.path);
        if (o.error !== undefined) {
          unreadable++;
          await writer.flush();
          out.warn(o.error.message);
          if (out.json) writer.add(JSON.stringify({ path: entry.path, ok: false, error: o.error.code }));
          else writer.add(`${shown.prefix}${shown.name}: FAILED open or read`);
          continue;
        }
        const ok = o.result.digest === entry.digest;
        if (!ok) mismatched++;
        if (out.json) {
          writer.add(
            JSON.stringify({
              path: entry.path,
              ok,
              algorithm,
              expected: entry.digest,
              actual: o.result.digest,
            }),
          );
        } else if (!ok || !out.quiet) {
          writer.add(`${shown.prefix}${shown.name}: ${ok ? 'OK' : 'FAILED'}`);
        }
      }
      await writer.flushIfFull();
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
