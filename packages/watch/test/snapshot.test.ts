import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WatchError } from '@fsw/errors';
import { changesSince, writeSnapshot } from '@fsw/watch';
import { afterEach, describe, expect, it } from 'vitest';
import { show, tempDir } from './helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('snapshots', () => {
  it('reports what changed while nobody was watching', async () => {
    const t = await tempDir();
    const s = await tempDir('fsw-snap-');
    cleanups.push(t.cleanup, s.cleanup);
    const dir = t.dir;
    const file = join(s.dir, 'snap');
    await mkdir(join(dir, 'olddir', 'inner'), { recursive: true });
    await writeFile(join(dir, 'same.txt'), '1');
    await writeFile(join(dir, 'edit.txt'), '1');
    await writeFile(join(dir, 'gone.txt'), '1');
    await writeFile(join(dir, 'olddir', 'inner', 'x'), '1');
    await mkdir(join(dir, 'node_modules'));
    await writeSnapshot(dir, file, { ignore: ['node_modules'] });
    // mtimes have nanosecond resolution here, but make the edit unmistakable.
    await writeFile(join(dir, 'edit.txt'), '2 longer');
    const later = new Date(Date.now() + 5000);
    await import('node:fs/promises').then((fs) => fs.utimes(join(dir, 'edit.txt'), later, later));
    await unlink(join(dir, 'gone.txt'));
    await rm(join(dir, 'olddir'), { recursive: true });
    await writeFile(join(dir, 'new.txt'), '1');
    await writeFile(join(dir, 'node_modules', 'ignored.js'), '1');
    const events = await changesSince(dir, file, { ignore: ['node_modules'] });
    expect(events.map((e) => show(dir, e)).sort()).toEqual([
      'created new.txt',
      'deleted gone.txt',
      'deleted olddir/',
      'deleted olddir/inner/',
      'deleted olddir/inner/x',
      'modified edit.txt',
    ]);
    const onlyCreated = await changesSince(dir, file, { ignore: ['node_modules'], types: ['created'] });
    expect(onlyCreated.map((e) => show(dir, e))).toEqual(['created new.txt']);
  });

  it('throws E_NOT_FOUND for a missing snapshot file or folder', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await expect(changesSince(t.dir, join(t.dir, 'no-snapshot'))).rejects.toSatisfy(
      (e) => WatchError.is(e) && e.code === 'E_NOT_FOUND' && e.path === join(t.dir, 'no-snapshot'),
    );
    await expect(writeSnapshot(join(t.dir, 'missing'), join(t.dir, 'snap'))).rejects.toSatisfy(
      (e) => WatchError.is(e) && e.code === 'E_NOT_FOUND',
    );
  });
});
