import { describe, expect, it } from 'vitest';
import { readIdleMs, SpareCoreProbe } from '../src/internal/spare-core.js';

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
