import { createRequire } from 'node:module';
import { Command } from 'commander';
import { commands } from './commands/index.js';
import type { CommandContext } from './context.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** Builds the `fsw` program with every command registered. */
export function createProgram(ctx: CommandContext): Command {
  const program = new Command('fsw')
    .description(
      'Fast, parallel filesystem work: walk, hash, copy, dedup, watch, and fstree-compatible sync.',
    )
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError()
    .configureOutput({
      writeOut: (text) => ctx.io.stdout.write(text),
      writeErr: (text) => ctx.io.stderr.write(text),
      outputError: (text, write) => write(`fsw: ${text.replace(/^error: /, '')}`),
    })
    .exitOverride();
  for (const register of commands) register(program, ctx);
  // Subcommands inherit the output settings and the throwing exit behaviour.
  for (const command of program.commands) {
    command.exitOverride().configureOutput(program.configureOutput());
  }
  return program;
}
