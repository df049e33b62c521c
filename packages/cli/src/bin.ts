#!/usr/bin/env node
import { main } from './main.js';

// A reader that goes away (`fsw walk . | head`) is not a failure of ours: stop quietly, as coreutils do under
// SIGPIPE, instead of crashing with an EPIPE stack.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

process.exitCode = await main(process.argv, {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
