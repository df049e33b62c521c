import { CommanderError } from 'commander';
import { UsageError } from './format.js';
import type { Io } from './output.js';
import { createProgram } from './program.js';

/**
 * Runs `fsw` with `argv` (as `process.argv`: node, script, args...) and resolves to the exit code:
 * 0 success, 1 failure (also partial failure), 2 usage error.
 */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let exitCode = 0;
  try {
    const program = await createProgram(
      { io, setExitCode: (code) => (exitCode = Math.max(exitCode, code)) },
      argv,
    );
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end with code 0; every other commander error is a usage error it already printed.
      if (error.exitCode === 0) return 0;
      return 2;
    }
    if (error instanceof UsageError) {
      io.stderr.write(`fsw: ${error.message}\n`);
      return 2;
    }
    reportError(error, io);
    return 1;
  }
}

/** Prints an error as one line, `fsw: <message>`, with the stack only under `FSW_DEBUG=1`. */
export function reportError(error: unknown, io: Io): void {
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(`fsw: ${message}\n`);
  if (io.env.FSW_DEBUG === '1' && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
}
