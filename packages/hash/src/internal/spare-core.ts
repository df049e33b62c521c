import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

/** Linux counts CPU time in /proc/stat in USER_HZ ticks, 100 per second on every architecture. */
const MS_PER_TICK = 10;
/** A window shorter than this holds too few ticks to tell an idle core from a busy one. */
const MIN_WINDOW_MS = 20;

const readProcStat = () => readFileSync('/proc/stat', 'latin1');

/** Idle time (idle + iowait) of all cores so far, in ms, from /proc/stat; undefined where there is none. */
export function readIdleMs(read: () => string = readProcStat): number | undefined {
  try {
    const text = read();
    const fields = text.slice(0, text.indexOf('\n')).trim().split(/\s+/);
    if (fields[0] !== 'cpu') return undefined;
    const ticks = Number(fields[4]) + Number(fields[5] ?? 0);
    return Number.isFinite(ticks) ? ticks * MS_PER_TICK : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Threads running or ready to run right now on the whole machine (the calling one included), from the
 * `procs_running` line of /proc/stat; undefined where there is none.
 */
export function readRunning(read: () => string = readProcStat): number | undefined {
  try {
    const match = /^procs_running (\d+)$/m.exec(read());
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Tells whether the machine has a core to spare for another hashing thread, from how idle the cores were since
 * {@link SpareCoreProbe.start} (read from /proc/stat): at least half a core idle over the window. A one-minute
 * load average would lag: right after other busy processes end (a benchmark's runs back to back), it still reads
 * high for a minute. Where /proc/stat is missing, the load average is all there is.
 */
export class SpareCoreProbe {
  private at = 0;
  private idle: number | undefined;
  private started = false;
  private cached: boolean | undefined;
  private cachedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly cores: number = availableParallelism(),
    private readonly readIdle: () => number | undefined = readIdleMs,
    private readonly load: () => number = () => loadavg()[0]!,
    private readonly running: () => number | undefined = readRunning,
  ) {}

  /**
   * An answer without a window, for a start before any work: true when at most as many threads are runnable right
   * now as there are cores, the caller included — one of slack for the short-lived threads of its own start-up
   * (V8 compiles and collects on helper threads). Without /proc/stat: false (let the window decide later).
   */
  spareNow(): boolean {
    if (this.cores < 2) return false;
    const n = this.running();
    return n !== undefined && n <= this.cores;
  }

  /** Opens the window over which idleness is measured (no-op while one is open). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.at = performance.now();
    this.idle = this.readIdle();
  }

  /**
   * True when a core is free. With an open window of at least 20 ms: idle time over it of at least half a core
   * (the window then restarts); with a shorter one: false for now (ask again later). Without /proc/stat: the
   * one-minute load average leaves half a core. Answers are kept for 250 ms.
   */
  spare(): boolean {
    if (this.cores < 2) return false;
    const now = performance.now();
    if (this.cached !== undefined && now - this.cachedAt < 250) return this.cached;
    if (this.idle === undefined || !this.started) {
      this.started = false;
      return this.remember(now, this.load() < this.cores - 0.5);
    }
    const elapsed = now - this.at;
    if (elapsed < MIN_WINDOW_MS) return false;
    const idle = this.readIdle();
    this.started = false;
    if (idle === undefined) return this.remember(now, this.load() < this.cores - 0.5);
    return this.remember(now, idle - this.idle >= elapsed * 0.5);
  }

  private remember(now: number, value: boolean): boolean {
    this.cached = value;
    this.cachedAt = now;
    return value;
  }
}
