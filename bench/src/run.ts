import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copy } from './benchmarks/copy.js';
import { dedup } from './benchmarks/dedup.js';
import { hash } from './benchmarks/hash.js';
import { remoteBenchmark } from './benchmarks/remote.js';
import { serverBenchmark } from './benchmarks/server.js';
import { startup } from './benchmarks/startup.js';
import { treeBenchmark } from './benchmarks/tree.js';
import { walkBenchmark } from './benchmarks/walk.js';
import { watchBench } from './benchmarks/watch.js';
import { type Comparison, toMarkdown } from './harness.js';

/** A named group of comparisons. `run` may generate data (under bench/.data) and skip peers that are not installed. */
export interface Benchmark {
  readonly name: string;
  readonly run: () => Comparison[] | Promise<Comparison[]>;
}

/** Every benchmark `pnpm bench` runs; `pnpm bench NAME...` runs only those named. */
export const benchmarks: readonly Benchmark[] = [
  startup,
  walkBenchmark,
  copy,
  hash,
  watchBench,
  treeBenchmark,
  dedup,
  remoteBenchmark,
  serverBenchmark,
];

const selected = process.argv.slice(2);
const chosen = selected.length ? benchmarks.filter((b) => selected.includes(b.name)) : benchmarks;
const sections: string[] = [];
for (const bench of chosen) {
  process.stderr.write(`bench: ${bench.name}...\n`);
  const rows = await bench.run();
  const table = toMarkdown(rows);
  process.stdout.write(`\n## ${bench.name}\n\n${table}`);
  sections.push(`## ${bench.name}\n\n${table}`);
}
const header = `# Benchmark results\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)} (${process.platform} ${process.arch}, Node ${process.version}, ${(await import('node:os')).cpus().length} cores). Medians of alternating runs, whole process, warm cache unless stated.\n\n`;
const out = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  selected.length ? 'RESULTS.partial.md' : 'RESULTS.md',
);
writeFileSync(out, header + sections.join('\n'));
process.stderr.write(`bench: wrote ${out}\n`);
