import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join, relative, resolve } from 'node:path';
import type { FileEvent } from '@fsw/watch';
import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import { parseDurationMs, UsageError } from '../format.js';
import type { Output } from '../output.js';
import type { Register } from './index.js';

interface WatchFlags {
  debounce: string;
  ignore: string[];
  gitignore?: boolean;
  recursive: boolean;
  json?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `250` is milliseconds here (a debounce is short); `1s`, `250ms` work too. */
function parseMs(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : parseDurationMs(text);
}

/** Finds an executable the way a shell would, so that a typo fails at once rather than at the first change. */
async function findExecutable(name: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const candidates =
    name.includes('/') || isAbsolute(name)
      ? [resolve(name)]
      : (env.PATH ?? '')
          .split(delimiter)
          .filter(Boolean)
          .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return true;
    } catch {
      // Not in this PATH entry.
    }
  }
  return false;
}

/** Runs the command once with the changed paths; resolves to its exit code (or signal name). */
function runOnce(command: readonly string[], changed: readonly string[], ctx: Parameters<Register>[1]) {
  // Loaded here, not at the top: every `fsw` command would otherwise pay for child_process at start-up.
  const { spawn } = process.getBuiltinModule('node:child_process');
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...ctx.io.env, FSW_CHANGED: changed.join('\n') },
  });
  child.stdout.pipe(ctx.io.stdout, { end: false });
  child.stderr.pipe(ctx.io.stderr, { end: false });
  const done = new Promise<number | string>((resolve) => {
    child.once('error', (error) => resolve(error.message));
    child.once('close', (code, signal) => resolve(code ?? signal ?? 1));
  });
  return { child, done };
}

/** `fsw watch DIR [-- COMMAND ARGS...]`: prints file events, or runs a command after each batch (like entr). */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    program
      .command('watch')
      .description('print file events under a directory as they happen, or run a command after each batch')
      .argument('<dir>', 'directory to watch')
      .argument(
        '[command...]',
        'command to run after each batch (after --); changed paths are in $FSW_CHANGED',
      )
      .option('--debounce <ms>', 'quiet time before a batch is delivered (250, 250ms, 1s)', '50')
      .option('--ignore <pattern>', 'skip paths matching a gitignore-style pattern (repeatable)', collect, [])
      .option('--gitignore', 'honour .gitignore files')
      .option('--no-recursive', 'report direct children of the directory only'),
  ).action(async (dir: string, command: string[], flags: WatchFlags) => {
    const out = outputFor(ctx, flags);
    const debounceMs = parseMs(flags.debounce);
    if (command.length > 0 && !(await findExecutable(command[0]!, ctx.io.env))) {
      throw new UsageError(`command not found: ${command[0]}`);
    }
    const { FileWatcher } = await import('@fsw/watch');
    const controller = new AbortController();
    const watcher = new FileWatcher(dir, {
      debounceMs,
      ignore: flags.ignore,
      ignoreFiles: flags.gitignore ? ['.gitignore'] : [],
      recursive: flags.recursive,
      signal: controller.signal,
    });
    // Paths as the user typed the directory: `fsw watch src` prints `created src/a.ts`.
    const shown = (path: string) => join(dir, relative(watcher.path, path));

    let current: ReturnType<typeof runOnce> | undefined;
    const stop = (signal: NodeJS.Signals) => {
      // A terminal's Ctrl-C reaches the command too; a SIGTERM sent to fsw alone is passed on.
      if (signal === 'SIGTERM') current?.child.kill('SIGTERM');
      controller.abort(new Error(`stopped by ${signal}`));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);

    const changed = new Set<string>();
    let runner: Promise<void> | undefined;
    const runQueued = async (): Promise<void> => {
      // Never two runs at once: batches arriving meanwhile are merged into the next run.
      while (changed.size > 0 && !controller.signal.aborted) {
        const paths = [...changed];
        changed.clear();
        current = runOnce(command, paths, ctx);
        const result = await current.done;
        current = undefined;
        // A command ended by our own stop (SIGTERM passed on, Ctrl-C) is not a failure.
        if (result !== 0 && !controller.signal.aborted)
          out.warn(`${command.join(' ')}: ${typeof result === 'number' ? `exit code ${result}` : result}`);
      }
      runner = undefined;
    };

    try {
      await watcher.start();
      if (!flags.quiet) ctx.io.stderr.write(`watching ${dir}${command.length ? ` for ${command[0]}` : ''}\n`);
      for await (const batch of watcher) {
        if (command.length === 0) {
          for (const event of batch) print(out, event, shown);
          continue;
        }
        for (const event of batch) {
          if (event.type === 'renamed') changed.add(shown(event.oldPath));
          changed.add(shown(event.path));
        }
        runner ??= runQueued();
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await watcher.close();
      if (runner !== undefined) await runner;
    }
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};

function print(out: Output, event: FileEvent, shown: (path: string) => string): void {
  const path = shown(event.path);
  if (out.json) {
    out.record({
      type: event.type,
      path,
      ...(event.type === 'renamed' ? { oldPath: shown(event.oldPath) } : {}),
      isDir: event.isDir,
      timeMs: event.timeMs,
    });
    return;
  }
  const slash = event.isDir ? '/' : '';
  if (event.type === 'renamed') out.line(`renamed ${shown(event.oldPath)}${slash} -> ${path}${slash}`);
  else out.line(`${event.type} ${path}${slash}`);
}
