import type { Command } from 'commander';
import { createOutput, type Io, type Output } from './output.js';

/** What every command module receives when it registers itself. */
export interface CommandContext {
  readonly io: Io;
  /**
   * Reports a finished command's outcome: exit code 1 when `output.failed`.
   * Call it at the end of an action (or let the action return the Output).
   */
  readonly setExitCode: (code: number) => void;
}

/** Adds the shared `--json` and `-q, --quiet` flags to a command. */
export function withOutputOptions(command: Command): Command {
  return command
    .option('--json', 'print one JSON object per line (NDJSON)')
    .option('-q, --quiet', 'no progress output');
}

/** Builds the Output of a command from its parsed options. */
export function outputFor(ctx: CommandContext, options: { json?: boolean; quiet?: boolean }): Output {
  return createOutput(ctx.io, options);
}
