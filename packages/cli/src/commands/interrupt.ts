import type { Output } from '../output.js';

/** Said when a checkout is stopped by a signal. */
export const INTERRUPTED =
  'checkout interrupted; what was written is in place and no temp file was left: run it again to finish';

/** A run that SIGINT (Ctrl-C) or SIGTERM stops cleanly through an AbortSignal (copy, move, checkout, pull-checkout). */
export interface Interruptible {
  readonly signal: AbortSignal;
  /** Whether `error` is the run's own cancellation by a signal. */
  stoppedBy(error: unknown): boolean;
  /** 128 + the number of the first signal: 130 for SIGINT, 143 for SIGTERM. */
  readonly exitCode: number;
  /** Stops handling the signals (call when the run has ended). */
  dispose(): void;
}

/**
 * Handles SIGINT and SIGTERM until {@link Interruptible.dispose}: the first aborts the signal; later ones only say
 * that the run is stopping (with the default action, a second Ctrl-C would kill the process while files in flight
 * are being finished, leaving their temp files behind).
 */
export function interruptible(out: Output, verb: string): Interruptible {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = signal;
      controller.abort(new Error('interrupted'));
    } else out.warn(`${verb} stopping: waiting for the files in flight to be finished or removed`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    stoppedBy: (error) => controller.signal.aborted && error === controller.signal.reason,
    get exitCode() {
      return first === 'SIGTERM' ? 143 : 130;
    },
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
