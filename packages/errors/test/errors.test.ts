import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  CopyError,
  codeFromErrno,
  DedupError,
  FswError,
  fromErrno,
  HashError,
  RemoteError,
  type RemoteErrorCode,
  TreeError,
  WalkError,
  WatchError,
} from '@fsw/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fsw-errors-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A real errno error from Node for `errno`, made by provoking it on disk where that is possible. */
function errnoError(code: string, syscall = 'open', path = '/some/path'): NodeJS.ErrnoException {
  const err = new Error(`${code}: something, ${syscall} '${path}'`) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = syscall;
  err.path = path;
  return err;
}

describe('fromErrno', () => {
  const table: Array<[string, string]> = [
    ['ENOENT', 'E_NOT_FOUND'],
    ['EACCES', 'E_PERMISSION'],
    ['EPERM', 'E_PERMISSION'],
    ['EEXIST', 'E_EXISTS'],
    ['ENOTEMPTY', 'E_EXISTS'],
    ['ENOTDIR', 'E_NOT_DIR'],
    ['EISDIR', 'E_IS_DIR'],
    ['ELOOP', 'E_LOOP'],
    ['ENOSPC', 'E_NO_SPACE'],
    ['EDQUOT', 'E_NO_SPACE'],
    ['EXDEV', 'E_CROSS_DEVICE'],
    ['EMFILE', 'E_TOO_MANY_FILES'],
    ['ENFILE', 'E_TOO_MANY_FILES'],
    ['EINVAL', 'E_INVALID_ARGUMENT'],
    ['ENAMETOOLONG', 'E_INVALID_ARGUMENT'],
    ['EIO', 'E_IO'],
    ['EWHATEVER', 'E_IO'],
  ];
  it.each(table)('maps %s to %s', (errno, code) => {
    const original = errnoError(errno);
    const err = fromErrno(original, { path: '/a/b', family: WalkError });
    expect(err.code).toBe(code);
    expect(codeFromErrno(errno)).toBe(code);
    expect(err.path).toBe('/a/b');
    expect(err.cause).toBe(original);
    expect(err).toBeInstanceOf(WalkError);
    expect(err.message).toContain('/a/b');
  });

  it('reads well to a person, from a real EACCES-like error of a directory read', () => {
    const err = fromErrno(errnoError('EACCES', 'scandir', '/x/y'), { path: '/x/y', family: WalkError });
    expect(String(err)).toBe('WalkError: cannot read directory /x/y: permission denied (EACCES)');
  });

  it('maps a real ENOENT from the filesystem, keeping the original as cause', async () => {
    const missing = join(dir, 'nope');
    const original = await readdir(missing).catch((e: unknown) => e);
    const err = fromErrno(original, { path: missing, family: HashError, action: 'read directory' });
    expect(HashError.is(err)).toBe(true);
    expect(err.code).toBe('E_NOT_FOUND');
    expect(err.message).toBe(`cannot read directory ${missing}: no such file or directory (ENOENT)`);
    expect(err.cause).toBe(original);
  });

  it('maps a real ENOTDIR and EEXIST from the filesystem', async () => {
    const { writeFile, mkdir } = await import('node:fs/promises');
    const file = join(dir, 'f');
    await writeFile(file, 'x');
    const notDir = await readdir(file).catch((e: unknown) => e);
    expect(fromErrno(notDir, { path: file, family: CopyError }).code).toBe('E_NOT_DIR');
    const exists = await mkdir(file).catch((e: unknown) => e);
    const err = fromErrno(exists, { path: file, family: CopyError });
    expect(err.code).toBe('E_EXISTS');
    expect(err.message).toBe(`cannot create directory ${file}: already exists (EEXIST)`);
  });

  it('falls back to E_IO and the description from Node for unknown errno names', () => {
    const err = fromErrno(errnoError('ESTALE'), { family: TreeError });
    expect(err.code).toBe('E_IO');
    expect(err.message).toBe('cannot open: something (ESTALE)');
    expect(err.path).toBeUndefined();
  });

  it('accepts non-errno values', () => {
    const err = fromErrno('boom', { family: RemoteError, path: '/p' });
    expect(err.code).toBe('E_IO');
    expect(err.cause).toBe('boom');
    expect(err.message).toBe('cannot access /p: boom');
  });
});

describe('classes and guards', () => {
  const families = [WalkError, HashError, CopyError, DedupError, WatchError, TreeError, RemoteError] as const;

  it.each(families.map((F) => [F.family, F] as const))(
    '%s carries name, code, path and cause',
    (name, Family) => {
      const cause = new Error('inner');
      const err = new Family('E_NOT_FOUND', 'cannot open /p: gone', { path: '/p', cause });
      expect(err.name).toBe(name);
      expect(err.code).toBe('E_NOT_FOUND');
      expect(err.path).toBe('/p');
      expect(err.cause).toBe(cause);
      expect(String(err)).toBe(`${name}: cannot open /p: gone`);
      expect(err.stack).toContain(name);
      expect(FswError.is(err)).toBe(true);
      expect(Family.is(err)).toBe(true);
      expect(err).toBeInstanceOf(FswError);
      for (const Other of families) if (Other !== Family) expect(Other.is(err)).toBe(false);
    },
  );

  it('is() rejects plain errors and non-objects', () => {
    for (const value of [new Error('x'), { code: 'E_IO' }, null, undefined, 'E_IO', 42]) {
      expect(FswError.is(value)).toBe(false);
      expect(WalkError.is(value)).toBe(false);
    }
  });

  it('is() narrows so code and path are usable without casts', () => {
    const thrown: unknown = new WatchError('E_WATCH_LIMIT', 'out of watches', { path: '/w' });
    if (!WatchError.is(thrown)) throw new Error('expected a WatchError');
    const code: 'E_WATCH_LIMIT' | string = thrown.code;
    expect(code).toBe('E_WATCH_LIMIT');
    expect(thrown.path).toBe('/w');
  });

  it('RemoteError takes E_ADDR_IN_USE for a taken port, keeping the errno error as cause', () => {
    const cause = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:9090'), {
      code: 'EADDRINUSE',
    });
    // `pnpm typecheck` fails here unless E_ADDR_IN_USE is one of the RemoteErrorCode members.
    const thrown: unknown = new RemoteError(
      'E_ADDR_IN_USE',
      'cannot listen for gRPC on 127.0.0.1:9090: address already in use',
      { cause },
    );
    if (!RemoteError.is(thrown)) throw new Error('expected a RemoteError');
    const code: RemoteErrorCode = thrown.code;
    expect(code).toBe('E_ADDR_IN_USE');
    expect(String(thrown)).toBe(
      'RemoteError: cannot listen for gRPC on 127.0.0.1:9090: address already in use',
    );
    expect(thrown.cause).toBe(cause);
  });

  it('keeps cause chains', () => {
    const root = new Error('disk on fire');
    const mid = fromErrno(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }), {
      family: HashError,
      path: '/f',
    });
    const top = new DedupError('E_IO', 'cannot hash /f', { path: '/f', cause: mid });
    Object.defineProperty(mid.cause as object, 'cause', { value: root });
    expect(top.cause).toBe(mid);
    expect(HashError.is(top.cause)).toBe(true);
    expect(((top.cause as Error).cause as Error).cause).toBe(root);
  });

  it('recognises errors made by a second installed copy of the package', async () => {
    const require = (await import('node:module')).createRequire(import.meta.url);
    const distDir = join(require.resolve('@fsw/errors'), '..');
    const copyDir = join(dir, 'copy');
    await cp(distDir, copyDir, { recursive: true });
    const other = (await import(
      pathToFileURL(join(copyDir, 'index.js')).href
    )) as typeof import('@fsw/errors');
    expect(other.WalkError).not.toBe(WalkError);
    const foreign = new other.WalkError('E_LOOP', 'loop', { path: '/l' });
    expect(foreign instanceof WalkError).toBe(false);
    expect(WalkError.is(foreign)).toBe(true);
    expect(FswError.is(foreign)).toBe(true);
    expect(HashError.is(foreign)).toBe(false);
    expect(other.WalkError.is(new WalkError('E_IO', 'x'))).toBe(true);
  });
});
