import { Option } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import { formatBytes, parseBytes, UsageError } from '../format.js';
import type { Progress } from '../output.js';
import type { Register } from './index.js';

const NEWLINE = Buffer.from('\n');

interface DedupFlags {
  json?: boolean;
  quiet?: boolean;
  minSize?: string;
  maxSize?: string;
  algo?: string;
  cache?: boolean;
  cacheFile?: string;
  summary?: boolean;
  link?: 'hard' | 'reflink' | 'sym';
  delete?: boolean;
  keep?: 'first' | 'oldest' | 'newest' | 'shortest-path';
  dryRun?: boolean;
  follow?: boolean;
  hidden?: boolean;
  paranoid?: boolean;
}

const LINKS = { hard: 'hardlink', reflink: 'reflink', sym: 'symlink' } as const;
const PAST = {
  hardlink: 'hard-linked',
  reflink: 'reflinked',
  symlink: 'symlinked',
  delete: 'deleted',
} as const;

/** `fsw dedup PATH...`: find duplicate files (jdupes-style listing), and optionally link or delete the extra copies. */
export const register: Register = (program, ctx) => {
  withOutputOptions(
    program
      .command('dedup')
      .description(
        'find duplicate files (size, head+tail hash, full hash); optionally link or delete the copies',
      )
      .argument('<paths...>', 'directories or files to search')
      .option('--min-size <size>', 'ignore files smaller than this (e.g. 4k, 1MiB)', '1')
      .option('--max-size <size>', 'ignore files larger than this')
      .option('--algo <algorithm>', 'hash algorithm (blake3, sha256, xxh128...)', 'blake3')
      .option('--cache', 'keep digests in ~/.cache/fsw so an unchanged file is never read twice')
      .option('--cache-file <path>', 'keep digests in this file (implies --cache)')
      .option('--paranoid', 'also compare candidate files byte for byte')
      .option('--follow', 'follow symlinks (a link counts as a name of its target, never as a copy)')
      .option('--no-hidden', 'skip dotfiles and dot-directories')
      .option('--summary', 'print only the summary')
      .addOption(
        new Option('--link <kind>', 'replace each extra copy by a link').choices(['hard', 'reflink', 'sym']),
      )
      .option('--delete', 'delete each extra copy')
      .addOption(
        new Option('--keep <rule>', 'which copy --link/--delete keep')
          .choices(['first', 'oldest', 'newest', 'shortest-path'])
          .default('first'),
      )
      .option('--dry-run', 'with --link/--delete: check everything, change nothing'),
  ).action(async (paths: string[], flags: DedupFlags) => {
    const out = outputFor(ctx, flags);
    if (flags.link !== undefined && flags.delete === true)
      throw new UsageError('--link and --delete exclude each other');
    const action =
      flags.delete === true ? 'delete' : flags.link !== undefined ? LINKS[flags.link] : undefined;
    if (flags.dryRun === true && action === undefined)
      throw new UsageError('--dry-run needs --link or --delete');
    const minSize = parseBytes(flags.minSize ?? '1');
    const maxSize = flags.maxSize === undefined ? undefined : parseBytes(flags.maxSize);
    const cache = flags.cacheFile ?? (flags.cache === true ? true : undefined);

    const { dedupe, scanDuplicates } = await import('@fsw/dedup');
    const { isHashAlgorithm, ALGORITHMS } = await import('@fsw/hash');
    if (!isHashAlgorithm(flags.algo)) {
      throw new UsageError(`unknown algorithm '${flags.algo}' (expected one of ${ALGORITHMS.join(', ')})`);
    }

    let bar: Progress | undefined;
    let barStage = '';
    const scan = await scanDuplicates(paths, {
      algorithm: flags.algo,
      paranoid: flags.paranoid === true,
      minSize,
      ...(maxSize !== undefined ? { maxSize } : {}),
      ...(cache !== undefined ? { cache } : {}),
      ...(flags.follow === true ? { followSymlinks: true } : {}),
      ...(flags.hidden === false ? { hidden: false } : {}),
      onError: (error) => {
        out.warn(error.message);
        return 'skip';
      },
      onProgress: (p) => {
        if (p.stage !== barStage) {
          bar?.stop();
          barStage = p.stage;
          bar = out.progress({ total: p.total, label: p.stage.padEnd(7) });
        }
        bar?.update(p.done, p.bytes > 0 ? `read ${formatBytes(p.bytes)}` : undefined);
      },
    });
    bar?.stop();
    if (scan.cacheRebuilt && !out.quiet) {
      ctx.io.stderr.write('fsw: the hash cache was unreadable and has been rebuilt\n');
    }

    let duplicateFiles = 0;
    let wastedBytes = 0;
    // The groups leave in a few large writes, not one per line: to a file or a pipe each write is a system call.
    let pending = '';
    const emit = (text: string) => {
      pending += text;
      if (pending.length >= 1 << 16) {
        out.write(pending);
        pending = '';
      }
    };
    for (const group of scan.groups) {
      duplicateFiles += group.files.length - 1;
      wastedBytes += group.wastedBytes;
      const raw = group.rawPaths;
      if (out.json) {
        const record = {
          type: 'group',
          digest: group.digest,
          size: group.size,
          wastedBytes: group.wastedBytes,
          paths: group.paths,
          // A name that is not valid UTF-8: `paths` has a lossy form, this the exact bytes (null for the others).
          ...(raw !== undefined
            ? { rawPathsBase64: raw.map((bytes) => bytes?.toString('base64') ?? null) }
            : {}),
        };
        emit(`${JSON.stringify(record)}\n`);
      } else if (flags.summary !== true) {
        if (raw === undefined) emit(`${group.paths.join('\n')}\n\n`);
        else {
          // The exact bytes of each name, as jdupes prints them.
          if (pending !== '') out.write(pending);
          pending = '';
          const lines = group.paths.map((path, i) => raw[i] ?? Buffer.from(path));
          ctx.io.stdout.write(Buffer.concat([...lines.flatMap((line) => [line, NEWLINE]), NEWLINE]));
        }
      }
    }
    if (pending !== '') out.write(pending);
    const summary = {
      type: 'summary',
      groups: scan.groups.length,
      duplicateFiles,
      wastedBytes,
      filesScanned: scan.files,
      bytesRead: scan.bytesRead,
      skipped: scan.skipped,
    };
    const summaryText = `${plural(summary.groups, 'group')} of duplicates, ${plural(duplicateFiles, 'duplicate file')}, ${formatBytes(wastedBytes)} wasted (${scan.files} files scanned, ${formatBytes(scan.bytesRead)} read)`;
    if (out.json) out.record(summary);
    else if (flags.summary === true) out.line(summaryText);
    else if (!out.quiet) ctx.io.stderr.write(`${summaryText}\n`);

    if (action !== undefined) {
      const result = await dedupe(scan.groups, {
        action,
        keep: flags.keep ?? 'first',
        dryRun: flags.dryRun === true,
      });
      for (const done of result.done) {
        if (out.json) {
          // A name that is not valid UTF-8: `path` / `keptPath` are lossy forms, these the exact bytes.
          const { rawPath, keptRawPath, ...rest } = done;
          out.record({
            type: 'done',
            ...rest,
            ...(rawPath !== undefined ? { rawPathBase64: rawPath.toString('base64') } : {}),
            ...(keptRawPath !== undefined ? { keptRawPathBase64: keptRawPath.toString('base64') } : {}),
            dryRun: result.dryRun,
          });
        } else if (!out.quiet) {
          const verb = result.dryRun ? `would be ${PAST[done.action]}` : PAST[done.action];
          ctx.io.stderr.write(`${verb}: ${done.path} (kept ${done.keptPath})\n`);
        }
      }
      for (const skip of result.skipped) {
        if (out.json) {
          out.fail();
          out.record({
            type: 'skipped',
            path: skip.path,
            ...(skip.rawPath !== undefined ? { rawPathBase64: skip.rawPath.toString('base64') } : {}),
            code: skip.code,
            reason: skip.reason,
          });
        } else out.warn(`skipped ${skip.path}: ${skip.reason}`);
      }
      const text = `${result.dryRun ? 'would free' : 'freed'} ${formatBytes(result.bytesSaved)}: ${plural(result.done.length, 'path')} ${result.dryRun ? 'to replace' : 'replaced'}, ${result.skipped.length} skipped`;
      if (out.json)
        out.record({
          type: 'dedupe',
          dryRun: result.dryRun,
          done: result.done.length,
          skipped: result.skipped.length,
          bytesSaved: result.bytesSaved,
        });
      else if (!out.quiet) ctx.io.stderr.write(`${text}\n`);
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
