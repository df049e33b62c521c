import type { CopyOptions, CopyProgress, CopyResult } from '@fsw/copy';
import type { Command } from 'commander';
import type { CommandContext } from '../context.js';
import { outputFor, withOutputOptions } from '../context.js';
import { formatBytes, parseCount, UsageError } from '../format.js';
import type { Register } from './index.js';
import { interruptible } from './interrupt.js';

interface CopyFlags {
  overwrite?: boolean;
  skipExisting?: boolean;
  update?: boolean;
  preserve: boolean;
  reflink?: string;
  dereference?: boolean;
  dryRun?: boolean;
  concurrency?: string;
  glob?: string[];
  ignore?: string[];
  hidden: boolean;
  fsync?: boolean;
  verify?: string;
  json?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function define(program: Command, verb: 'copy' | 'move'): Command {
  const command = program
    .command(verb)
    .description(
      verb === 'copy'
        ? 'copy files and directories like cp -r: parallel, atomic per file, with progress'
        : 'move files and directories like mv: rename when possible, else copy, verify, then remove the source',
    )
    .argument('<paths...>', 'sources, then the destination (an existing directory receives the sources)')
    .option('-f, --overwrite', 'replace existing destination files')
    .option('-n, --skip-existing', 'leave existing destination files alone')
    .option('-u, --update', 'replace existing destination files only when the source is newer')
    .option('--no-preserve', 'do not keep mode and modification times')
    .option('--reflink <when>', 'copy-on-write clones: auto (default), always, never')
    .option('-L, --dereference', 'copy what symlinks point to instead of the links')
    .option('--dry-run', 'show what would be done, write nothing')
    .option(
      '-j, --concurrency <n>',
      'parallel copies at most: large files at once, threads for small files (default 8)',
    )
    .option('-g, --glob <pattern>', 'in directories, only files matching the glob (repeatable)', collect)
    .option(
      '--ignore <pattern>',
      'in directories, skip what matches this gitignore-style pattern (repeatable)',
      collect,
    )
    .option('--no-hidden', 'in directories, skip dotfiles and dot-directories')
    .option(
      '--fsync',
      'flush every file to disk before it is renamed into place (slow, survives power loss)',
    );
  if (verb === 'move') {
    command.option(
      '--verify <how>',
      'across filesystems, check each copy before removing its source: size or content',
      'size',
    );
  }
  return withOutputOptions(command);
}

function toOptions(flags: CopyFlags): CopyOptions {
  const policies = [
    flags.overwrite && 'overwrite',
    flags.skipExisting && 'skip',
    flags.update && 'newer',
  ].filter((p): p is 'overwrite' | 'skip' | 'newer' => typeof p === 'string');
  if (policies.length > 1) throw new UsageError('choose one of --overwrite, --skip-existing and --update');
  const reflink = flags.reflink ?? 'auto';
  if (reflink !== 'auto' && reflink !== 'always' && reflink !== 'never') {
    throw new UsageError(`invalid --reflink '${reflink}' (expected auto, always or never)`);
  }
  const verify = flags.verify ?? 'size';
  if (verify !== 'size' && verify !== 'content') {
    throw new UsageError(`invalid --verify '${verify}' (expected size or content)`);
  }
  const concurrency =
    flags.concurrency === undefined ? undefined : parseCount(flags.concurrency, 'concurrency');
  if (concurrency === 0) throw new UsageError('--concurrency must be at least 1');
  const filter: CopyOptions['filter'] = {
    ...(flags.glob !== undefined ? { glob: flags.glob } : {}),
    ...(flags.ignore !== undefined ? { ignore: flags.ignore } : {}),
    ...(flags.hidden ? {} : { hidden: false }),
  };
  return {
    overwrite: policies[0] ?? 'error',
    preserve: flags.preserve,
    reflink,
    symlinks: flags.dereference ? 'follow' : 'preserve',
    dryRun: flags.dryRun === true,
    fsync: flags.fsync === true,
    verify,
    filter,
    ...(concurrency !== undefined ? { concurrency } : {}),
  };
}

function summary(verb: 'copy' | 'move', result: CopyResult, dryRun: boolean, ms: number): string {
  const did = dryRun ? `would ${verb}` : verb === 'copy' ? 'copied' : 'moved';
  const files = `${result.files} file${result.files === 1 ? '' : 's'}`;
  const rate = !dryRun && ms > 0 ? `, ${formatBytes(Math.round((result.bytes / ms) * 1000))}/s` : '';
  const extra = [
    result.dirs > 0 ? `${result.dirs} director${result.dirs === 1 ? 'y' : 'ies'} created` : '',
    result.skipped > 0 ? `${result.skipped} skipped` : '',
    result.errors > 0 ? `${result.errors} failed` : '',
  ].filter(Boolean);
  return `${did} ${files} (${formatBytes(result.bytes)})${dryRun ? '' : ` in ${(ms / 1000).toFixed(2)}s${rate}`}${
    extra.length > 0 ? `; ${extra.join(', ')}` : ''
  }`;
}

async function run(
  ctx: CommandContext,
  verb: 'copy' | 'move',
  paths: string[],
  flags: CopyFlags,
): Promise<void> {
  if (paths.length < 2) throw new UsageError(`${verb} needs at least one source and a destination`);
  const options = toOptions(flags);
  const out = outputFor(ctx, flags);
  const sources = paths.slice(0, -1);
  const destination = paths.at(-1) as string;
  const { copy, move } = await import('@fsw/copy');
  const { CopyError } = await import('@fsw/errors');

  const bar = out.progress({ unit: 'bytes', label: verb });
  // Ctrl-C or SIGTERM: stop cleanly (files in flight finished or removed, no temp file left), then exit 128 + the
  // signal's number; later signals only say that the run is stopping.
  const stop = interruptible(out, verb);
  const started = performance.now();
  let result: CopyResult;
  try {
    result = await (verb === 'copy' ? copy : move)(sources, destination, {
      ...options,
      signal: stop.signal,
      onProgress: (p: CopyProgress) => {
        if (out.json) {
          out.record({ type: 'progress', ...p });
          return;
        }
        bar.setTotal(p.totalBytes);
        bar.update(p.bytesCopied, `${p.filesCompleted}/${p.totalFiles} files`);
      },
      onError: (error) => {
        if (out.json)
          out.record({ type: 'error', code: error.code, path: error.path, message: error.message });
        out.warn(error.message);
        return 'skip';
      },
    });
  } catch (error) {
    bar.stop();
    if (stop.stoppedBy(error)) {
      out.warn(`${verb} interrupted; files completed so far are in place, no partial file was left`);
      ctx.setExitCode(stop.exitCode);
      return;
    }
    const completed = (error as { completed?: CopyResult }).completed;
    if (CopyError.is(error) && completed !== undefined) {
      if (out.json)
        out.record({ type: 'result', ok: false, code: error.code, message: error.message, ...completed });
      out.warn(`${error.message} (${summary(verb, completed, false, performance.now() - started)} before)`);
      ctx.setExitCode(1);
      return;
    }
    throw error;
  } finally {
    stop.dispose();
  }
  bar.stop();
  const ms = performance.now() - started;
  if (out.json)
    out.record({ type: 'result', ok: result.errors === 0, dryRun: options.dryRun === true, ...result });
  else if (!out.quiet) out.line(summary(verb, result, options.dryRun === true, ms));
  ctx.setExitCode(out.failed ? 1 : 0);
}

/** `fsw copy SRC... DEST` and `fsw move SRC... DEST`. */
export const register: Register = (program: Command, ctx) => {
  define(program, 'copy').action((paths: string[], flags: CopyFlags) => run(ctx, 'copy', paths, flags));
  define(program, 'move').action((paths: string[], flags: CopyFlags) => run(ctx, 'move', paths, flags));
};
