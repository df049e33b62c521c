import { WatchError } from '@fsw/errors';
import { describe, expect, it } from 'vitest';
import { toWatchError } from '../src/internal/errors.js';

// The watch limit cannot be reached for real in a test without lowering fs.inotify.max_user_watches, which is
// system-wide (it would break every other watcher on the machine, and needs root): these tests inject the exact
// errors @parcel/watcher's inotify backend produces (src/linux/InotifyBackend.cc) instead.
describe('backend error mapping', () => {
  it('turns inotify ENOSPC into E_WATCH_LIMIT naming fs.inotify.max_user_watches and the fix', () => {
    const native = new Error(
      "inotify_add_watch on '/srv/app/node_modules/x' failed: No space left on device",
    );
    const error = toWatchError(native, '/srv/app');
    expect(WatchError.is(error)).toBe(true);
    expect(error.code).toBe('E_WATCH_LIMIT');
    expect(error.path).toBe('/srv/app/node_modules/x');
    expect(error.message).toContain('fs.inotify.max_user_watches');
    expect(error.message).toContain('sysctl fs.inotify.max_user_watches=524288');
    expect(error.message).not.toContain('no space left');
    expect(error.cause).toBe(native);
  });

  it('turns an exhausted inotify instance limit into E_WATCH_LIMIT naming max_user_instances', () => {
    const error = toWatchError(new Error('Unable to initialize inotify: Too many open files'), '/srv/app');
    expect(error.code).toBe('E_WATCH_LIMIT');
    expect(error.message).toContain('fs.inotify.max_user_instances');
  });

  it('maps errno texts to their codes and anything else to E_BACKEND, keeping the cause', () => {
    expect(toWatchError(new Error("inotify_add_watch on '/a/b' failed: Permission denied"), '/a').code).toBe(
      'E_PERMISSION',
    );
    const other = new Error('Error reading from inotify: Input/output error');
    const error = toWatchError(other, '/a');
    expect(error.code).toBe('E_BACKEND');
    expect(error.message).toContain('Input/output error');
    expect(error.cause).toBe(other);
  });
});
