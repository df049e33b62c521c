import { describe, expect, it } from 'vitest';
import { readIdleMs, readRunning, SpareCoreProbe } from '../src/internal/spare-core.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('readIdleMs', () => {
  it('reads idle + iowait ticks of all cores from /proc/stat, in ms', () => {
    const text = 'cpu  4705 150 1120 16250 520 0 46 0 0 0\ncpu0 2353 75 560 8125 260 0 23 0 0 0\n';
    expect(readIdleMs(() => text)).toBe((16250 + 520) * 10);
    expect(readIdleMs(() => 'intr 1 2 3\n')).toBeUndefined();
    expect(
      readIdleMs(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
  });
});

describe('readRunning', () => {
  it('reads the runnable threads of the machine from /proc/stat', () => {
    expect(readRunning(() => 'cpu  1 2 3 4\nctxt 99\nprocs_running 3\nprocs_blocked 0\n')).toBe(3);
    expect(readRunning(() => 'cpu  1 2 3 4\n')).toBeUndefined();
    expect(typeof readRunning()).toBe('number');
  });
});

describe('SpareCoreProbe.spareNow', () => {
  it('answers at once from the threads runnable now: no more than the cores, the caller included', () => {
    const probe = (cores: number, running: number | undefined) =>
      new SpareCoreProbe(
        cores,
        () => 0,
        () => 0,
        () => running,
      ).spareNow();
    expect(probe(2, 1)).toBe(true);
    expect(probe(2, 2)).toBe(true);
    expect(probe(2, 3)).toBe(false);
    expect(probe(2, undefined)).toBe(false);
    expect(probe(1, 1)).toBe(false);
  });
});

describe('SpareCoreProbe', () => {
  it('answers from how idle the cores were over a window of 20 ms or more', async () => {
    // One core idle all along: its idle time grows with the clock, whatever the machine's real load.
    const oneCoreIdle = new SpareCoreProbe(
      2,
      () => performance.now(),
      () => 99,
    );
    oneCoreIdle.start();
    // Too short a window: no answer yet (false), the window stays open.
    expect(oneCoreIdle.spare()).toBe(false);
    await sleep(30);
    expect(oneCoreIdle.spare()).toBe(true);
    // Every core busy (no idle time at all), whatever the load average says.
    const busy = new SpareCoreProbe(
      2,
      () => 5000,
      () => 0,
    );
    busy.start();
    await sleep(30);
    expect(busy.spare()).toBe(false);
  });

  it('falls back to the load average without /proc/stat, and never spares the only core', () => {
    const none = () => undefined;
    const idleMachine = new SpareCoreProbe(4, none, () => 1.2);
    idleMachine.start();
    expect(idleMachine.spare()).toBe(true);
    const loaded = new SpareCoreProbe(4, none, () => 3.8);
    loaded.start();
    expect(loaded.spare()).toBe(false);
    const single = new SpareCoreProbe(
      1,
      () => 1e9,
      () => 0,
    );
    single.start();
    expect(single.spare()).toBe(false);
  });
});
