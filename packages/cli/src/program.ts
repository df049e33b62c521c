import { createRequire } from 'node:module';
import { Command } from 'commander';
import { commands } from './commands/index.js';
import type { CommandContext } from './context.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/**
 * Builds the `fsw` program. Given the arguments (as `process.argv`: node, script, args...) and a first argument
 * that names a command, only that command's module is loaded and registered, which keeps start-up short;
 * `-V`/`--version` alone loads none; otherwise (no argv, help, another option first, an unknown name) every
 * command is.
 */
export async function createProgram(ctx: CommandContext, argv?: readonly string[]): Promise<Command> {
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
  const name = argv?.[2];
  // `fsw --version` needs no command; `fsw NAME ...` needs NAME's module only.
  const wanted =
    name === '-V' || name === '--version'
      ? []
      : (commands.find((m) => name !== undefined && m.names.includes(name)) ?? commands);
  const modules = await Promise.all((Array.isArray(wanted) ? wanted : [wanted]).map((m) => m.load()));
  for (const { register } of modules) register(program, ctx);
  // Subcommands inherit the output settings and the throwing exit behaviour.
  for (const command of program.commands) {
    command.exitOverride().configureOutput(program.configureOutput());
  }
  return program;
}
