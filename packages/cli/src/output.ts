import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';

/** Where a command writes, and how. Built once per command run from its `--json`/`--quiet` flags. */
export interface Output {
  /** `--json`: one JSON object per line on stdout. */
  readonly json: boolean;
  /** `--quiet`: no progress, no summaries. */
  readonly quiet: boolean;
  /** Colours are on: stdout is a TTY and `NO_COLOR` is unset. */
  readonly color: boolean;
  /** Writes one line of human output to stdout. */
  line(text: string): void;
  /** Writes raw text to stdout (no newline added). */
  write(text: string | Uint8Array): void;
  /** Writes one NDJSON record to stdout. */
  record(value: unknown): void;
  /** Writes `fsw: <message>` to stderr and remembers that the run partly failed (exit code 1). */
  warn(message: string): void;
  /** A progress bar on stderr; a no-op unless stderr is a TTY and neither `--json` nor `--quiet` is set. */
  progress(options: ProgressOptions): Progress;
  /** True once `warn` was called: the command then ends with exit code 1. */
  readonly failed: boolean;
  /** Marks the run as failed (exit code 1) without printing. */
  fail(): void;
}

/** Options of {@link Output.progress}. */
export interface ProgressOptions {
  /** The total, when known. @default 0 (unknown) */
  readonly total?: number;
  /** `'bytes'` shows sizes, rate and ETA in bytes; `'count'` plain numbers. @default 'count' */
  readonly unit?: 'bytes' | 'count';
  /** A label before the bar, e.g. the stage name. */
  readonly label?: string;
}

/** A live progress bar. Every method is cheap and synchronous. */
export interface Progress {
  update(value: number, detail?: string): void;
  setTotal(total: number): void;
  setLabel(label: string): void;
  stop(): void;
}

/** The streams and environment a command runs with; tests pass their own. */
export interface Io {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
}

const NO_PROGRESS: Progress = {
  update() {},
  setTotal() {},
  setLabel() {},
  stop() {},
};

/** Colour helpers that turn to identity when colour is off. */
export function paint(on: boolean) {
  const wrap = (open: number, close: number) => (text: string) =>
    on ? `\u001b[${open}m${text}\u001b[${close}m` : text;
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
  };
}

/** Builds the {@link Output} of one command run. */
export function createOutput(io: Io, flags: { json?: boolean; quiet?: boolean }): Output {
  const json = flags.json === true;
  const quiet = flags.quiet === true;
  const noColor = io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '';
  const color = !noColor && io.stdout.isTTY === true;
  const showProgress = !json && !quiet && io.stderr.isTTY === true && io.env.CI !== 'true';
  let failed = false;
  return {
    json,
    quiet,
    color,
    get failed() {
      return failed;
    },
    fail() {
      failed = true;
    },
    line(text) {
      io.stdout.write(`${text}\n`);
    },
    write(text) {
      io.stdout.write(text);
    },
    record(value) {
      io.stdout.write(`${JSON.stringify(value)}\n`);
    },
    warn(message) {
      failed = true;
      io.stderr.write(`fsw: ${message}\n`);
    },
    progress(options) {
      if (!showProgress) return NO_PROGRESS;
      return createBar(io.stderr, options, !noColor);
    },
  };
}

function createBar(stream: Writable, options: ProgressOptions, color: boolean): Progress {
  const bytes = options.unit === 'bytes';
  // cli-progress is loaded only when a bar is really drawn: it is dead weight for `--json`, pipes and CI.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
  const bar = new cliProgress.SingleBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
      fps: 10,
      barsize: 24,
      format: (opts, params, payload: { label?: string; detail?: string }) => {
        const total = params.total;
        const size = opts.barsize ?? 24;
        const filled = total > 0 ? Math.min(size, Math.round((params.value / total) * size)) : 0;
        const barText = (color ? '\u001b[36m' : '') + '█'.repeat(filled) + (color ? '\u001b[0m' : '');
        const rest = '░'.repeat(size - filled);
        const show = (n: number) => (bytes ? formatBytesShort(n) : String(n));
        const elapsed = Math.max(0.001, (Date.now() - params.startTime) / 1000);
        const rate = params.value / elapsed;
        const rateText = bytes ? `${formatBytesShort(rate)}/s` : `${rate.toFixed(0)}/s`;
        const eta =
          total > 0 && rate > 0 ? ` eta ${Math.max(0, Math.round((total - params.value) / rate))}s` : '';
        const label = payload.label ? `${payload.label} ` : '';
        const detail = payload.detail ? ` ${payload.detail}` : '';
        return `${label}${barText}${rest} ${show(params.value)}${total > 0 ? `/${show(total)}` : ''} ${rateText}${eta}${detail}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(options.total ?? 0, 0, { label: options.label ?? '', detail: '' });
  return {
    update(value, detail) {
      bar.update(value, detail === undefined ? {} : { detail });
    },
    setTotal(total) {
      bar.setTotal(total);
    },
    setLabel(label) {
      bar.update({ label });
    },
    stop() {
      bar.stop();
    },
  };
}

function formatBytesShort(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(1)}${units[i]}`;
}
