import { FSW_BIN } from '../dataset.js';
import { compare } from '../harness.js';
import type { Benchmark } from '../run.js';

const fswBin = FSW_BIN;

/** The floor every `fsw` command pays: start-up of the CLI against a bare Node.js start-up. */
export const startup: Benchmark = {
  name: 'startup',
  run: () => [
    compare({
      name: 'CLI start-up (`fsw --version`)',
      ours: { label: 'fsw --version', command: [process.execPath, fswBin, '--version'] },
      peer: { label: 'node -e 0', command: [process.execPath, '-e', '0'] },
      runs: 10,
      target: 'ratio <= 1.5',
    }),
  ],
};
