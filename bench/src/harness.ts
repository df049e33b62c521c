import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** One command line to time: argv plus an optional shell pipeline. */
export interface Runnable {
  /** A label shown in the report, e.g. `fsw walk` or `find`. */
  readonly label: string;
  /** argv to spawn directly, or a string run with `bash -c` (for pipelines). */
  readonly command: readonly string[] | string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Median wall time and peak RSS of one side of a comparison. */
export interface Measured {
  readonly label: string;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Peak resident memory in KiB from `/usr/bin/time`, when it is installed. */
  readonly peakRssKiB?: number;
  /** Median user+system CPU time from `/usr/bin/time`: steadier than wall time on a loaded machine. */
  readonly cpuMs?: number;
}

/** The outcome of {@link compare}: our median over the peer's median. */
export interface Comparison {
  readonly name: string;
  readonly ours: Measured;
  readonly peer: Measured;
  /** ours / peer: below 1 means we were faster. */
  readonly ratio: number;
  readonly target?: string;
}

export interface CompareOptions {
  readonly name: string;
  readonly ours: Runnable;
  readonly peer: Runnable;
  /** Timed runs of each side. @default 5 */
  readonly runs?: number;
  /** Untimed runs of each side first (warms the page cache). @default 1 */
  readonly warmup?: number;
  /** Runs before every timed run of either side, untimed (e.g. empty a destination). */
  readonly before?: () => void;
  /** A text for the report, e.g. `ratio <= 2`. */
  readonly target?: string;
}

const TIME = '/usr/bin/time';

interface Sample {
  ms: number;
  rss?: number;
  cpu?: number;
}

function runOnce(r: Runnable): Sample {
  const argv = typeof r.command === 'string' ? ['bash', '-c', r.command] : [...r.command];
  const timed = existsSync(TIME) ? [TIME, '-f', '%M %U %S', ...argv] : argv;
  const start = process.hrtime.bigint();
  const res = spawnSync(timed[0]!, timed.slice(1), {
    env: { ...process.env, ...r.env },
    cwd: r.cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (res.status !== 0) {
    throw new Error(`${r.label} failed (exit ${res.status}): ${res.stderr?.toString().slice(-500)}`);
  }
  const lastLine = res.stderr?.toString().trim().split('\n').pop() ?? '';
  const usage = existsSync(TIME) ? /^(\d+) ([\d.]+) ([\d.]+)$/.exec(lastLine) : null;
  if (!usage) return { ms };
  return { ms, rss: Number(usage[1]), cpu: (Number(usage[2]) + Number(usage[3])) * 1000 };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function summarise(label: string, samples: Sample[]): Measured {
  const ms = samples.map((s) => s.ms);
  const rss = samples.map((s) => s.rss).filter((v): v is number => v !== undefined);
  const cpu = samples.map((s) => s.cpu).filter((v): v is number => v !== undefined);
  return {
    label,
    medianMs: median(ms),
    minMs: Math.min(...ms),
    maxMs: Math.max(...ms),
    ...(rss.length ? { peakRssKiB: Math.max(...rss) } : {}),
    ...(cpu.length ? { cpuMs: median(cpu) } : {}),
  };
}

/** Runs `ours` and `peer` alternately on the same data and reports medians and their ratio. */
export function compare(options: CompareOptions): Comparison {
  const runs = options.runs ?? 5;
  for (let i = 0; i < (options.warmup ?? 1); i++) {
    options.before?.();
    runOnce(options.ours);
    options.before?.();
    runOnce(options.peer);
  }
  const ours: Sample[] = [];
  const peer: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternate which side goes first so that neither always inherits the other's cache state.
    const order = i % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
    for (const side of order) {
      options.before?.();
      (side === 'ours' ? ours : peer).push(runOnce(side === 'ours' ? options.ours : options.peer));
    }
  }
  const o = summarise(options.ours.label, ours);
  const p = summarise(options.peer.label, peer);
  return {
    name: options.name,
    ours: o,
    peer: p,
    ratio: o.medianMs / p.medianMs,
    ...(options.target ? { target: options.target } : {}),
  };
}

/** True when `command` is on PATH. */
export function have(command: string): boolean {
  return spawnSync('bash', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** One Markdown table row per comparison. */
export function toMarkdown(rows: readonly Comparison[]): string {
  const head =
    '| benchmark | ours | median | peer | median | ratio (ours/peer) | target | CPU ours / peer | peak RSS ours / peer |\n|---|---|---:|---|---:|---:|---|---:|---:|\n';
  const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
  const cpu = (ms?: number) => (ms === undefined ? '?' : fmt(ms));
  const mem = (k?: number) => (k === undefined ? '?' : `${(k / 1024).toFixed(0)} MiB`);
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${r.name} | \`${r.ours.label}\` | ${fmt(r.ours.medianMs)} | \`${r.peer.label}\` | ${fmt(r.peer.medianMs)} | ${r.ratio.toFixed(2)} | ${r.target ?? ''} | ${cpu(r.ours.cpuMs)} / ${cpu(r.peer.cpuMs)} | ${mem(r.ours.peakRssKiB)} / ${mem(r.peer.peakRssKiB)} |`,
      )
      .join('\n') +
    '\n'
  );
}
