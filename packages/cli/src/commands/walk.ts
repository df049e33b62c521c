import type { Writable } from 'node:stream';
import type { WalkEntry, WalkOptions } from '@fsw/walk';
import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import { parseCount, UsageError } from '../format.js';
import type { Register } from './index.js';

/** Bytes gathered before one write to stdout: one write per line would dominate a fast walk. */
const CHUNK = 256 * 1024;

const TYPES: Readonly<Record<string, WalkOptions['type']>> = {
  f: 'file',
  file: 'file',
  d: 'dir',
  dir: 'dir',
  l: 'symlink',
  symlink: 'symlink',
};

interface WalkFlags {
  type?: string;
  glob: string[];
  ignore: string[];
  gitignore?: boolean;
  maxDepth?: string;
  hidden: boolean;
  follow?: boolean;
  sort?: boolean;
  json?: boolean;
  quiet?: boolean;
  null?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Writes text and bytes to a stream in large chunks, waiting for it to drain when it asks to. A reader that goes away
 * (`fsw walk | head`: EPIPE) closes it quietly, as `find` ends on SIGPIPE.
 */
class ChunkedWriter {
  private readonly stream: Writable;
  // Text is encoded straight into one buffer: cheaper than joining strings and encoding the result.
  private buffer = Buffer.allocUnsafe(CHUNK);
  private size = 0;
  private readonly onError = (error: NodeJS.ErrnoException) => {
    this.closed = true;
    if (error.code !== 'EPIPE') this.failure = error;
  };
  /** True once the stream failed or its reader went away: stop producing. */
  closed = false;
  /** A write failure other than a reader going away. */
  failure: Error | undefined;

  constructor(stream: Writable) {
    this.stream = stream;
    stream.on('error', this.onError);
  }

  push(part: string | Buffer): Promise<void> | undefined {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    const room = typeof part === 'string' ? part.length * 3 : part.length;
    let pending: Promise<void> | undefined;
    if (this.size + room > this.buffer.length) {
      pending = this.flush();
      if (room > this.buffer.length) this.buffer = Buffer.allocUnsafe(room);
    }
    if (typeof part === 'string') this.size += this.buffer.write(part, this.size);
    else this.size += part.copy(this.buffer, this.size);
    return pending;
  }

  flush(): Promise<void> | undefined {
    if (this.closed) this.size = 0;
    if (this.size === 0) return undefined;
    const data = this.buffer.subarray(0, this.size);
    // The stream may hold on to what it was given: the next text goes to a fresh buffer.
    this.buffer = Buffer.allocUnsafe(Math.max(CHUNK, this.buffer.length));
    this.size = 0;
    if (this.stream.write(data)) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.stream.off('error', done);
        resolve();
      };
      this.stream.once('drain', done);
      this.stream.once('close', done);
      this.stream.once('error', done);
    });
  }

  /** Flushes what is left and stops listening; settles once the data was handed to the stream. */
  async end(): Promise<void> {
    await this.flush();
    if (!this.closed && this.stream.writableNeedDrain) {
      await new Promise<void>((resolve) => this.stream.write('', () => resolve()));
    }
    this.stream.off('error', this.onError);
    // Errors after this point (the reader leaving during exit) must not crash the process.
    this.stream.on('error', () => {});
  }
}

function record(entry: WalkEntry): string {
  if (entry.rawPath === undefined) return `${JSON.stringify(entry)}\n`;
  const { rawPath, rawRelativePath: _bytes, ...rest } = entry;
  // JSON cannot hold bytes that are not UTF-8: a mangled name carries its exact bytes in base64 alongside.
  return `${JSON.stringify({ ...rest, rawPathBase64: rawPath.toString('base64') })}\n`;
}

/** `fsw walk DIR...`: prints every path under the given directories. */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    program
      .command('walk')
      .description('list the entries under directories, like find (fast, parallel, filtered)')
      .argument('<dir...>', 'directories (or files) to walk')
      .option('-t, --type <type>', 'only entries of this type: f (file), d (dir), l (symlink)')
      .option(
        '-g, --glob <pattern>',
        'only entries matching the glob (repeatable; no slash: matches the name)',
        collect,
        [],
      )
      .option(
        '-i, --ignore <pattern>',
        'skip entries matching a gitignore-style pattern (repeatable)',
        collect,
        [],
      )
      .option('--gitignore', 'honour .gitignore files in every directory')
      .option('-d, --max-depth <n>', 'descend at most n levels (1: the children of DIR only)')
      .option('--no-hidden', 'skip dotfiles and dot-directories')
      .option('-L, --follow', 'follow symbolic links (loops are reported, not followed)')
      .option('-s, --sort', 'sorted output: depth-first, names in order')
      .option('-0, --null', 'end each path with NUL instead of a newline'),
  ).action(async (dirs: string[], flags: WalkFlags) => {
    const out = outputFor(ctx, flags);
    let type: WalkOptions['type'];
    if (flags.type !== undefined) {
      type = TYPES[flags.type];
      if (type === undefined) throw new UsageError(`invalid --type '${flags.type}' (expected f, d or l)`);
    }
    const options: WalkOptions = {
      ...(type !== undefined ? { type } : {}),
      ...(flags.glob.length > 0 ? { glob: flags.glob } : {}),
      ...(flags.ignore.length > 0 ? { ignore: flags.ignore } : {}),
      ...(flags.gitignore ? { ignoreFiles: ['.gitignore'] } : {}),
      ...(flags.maxDepth !== undefined ? { maxDepth: parseCount(flags.maxDepth, 'depth') } : {}),
      hidden: flags.hidden,
      followSymlinks: flags.follow === true,
      sort: flags.sort === true,
      stat: out.json,
      // A CLI owns its event loop: stat like find does, without a thread-pool round trip per entry.
      syncStat: true,
      onError: (error) => {
        out.warn(error.message);
        return 'skip';
      },
    };
    const { walk } = await import('@fsw/walk');
    const { FswError } = await import('@fsw/errors');
    const writer = new ChunkedWriter(ctx.io.stdout);
    const end = flags.null ? '\0' : '\n';
    for (const dir of dirs) {
      if (writer.closed) break;
      try {
        for await (const batch of walk(dir, options).batches()) {
          for (const entry of batch) {
            let pending: Promise<void> | undefined;
            if (out.json) pending = writer.push(record(entry));
            else if (entry.rawPath === undefined) pending = writer.push(entry.path + end);
            else {
              // Print the exact bytes of a name that is not UTF-8, as find does.
              writer.push(entry.rawPath);
              pending = writer.push(end);
            }
            if (pending !== undefined) await pending;
          }
          if (writer.closed) break;
        }
      } catch (error) {
        // A root that cannot be walked is reported and the others still are (as find does).
        if (!FswError.is(error)) throw error;
        await writer.flush();
        out.warn(error.message);
      }
    }
    await writer.end();
    if (writer.failure !== undefined) throw writer.failure;
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
