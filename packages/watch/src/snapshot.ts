import { lstat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fromErrno, WatchError } from '@fsw/errors';
import parcel from '@parcel/watcher';
import { assertDir, toWatchError } from './internal/errors.js';
import { IgnoreRules } from './internal/ignore-rules.js';
import { resolveFilter } from './internal/options.js';
import type { FileEvent, SnapshotOptions } from './types.js';

async function nativeOptions(rules: IgnoreRules, recursive: boolean): Promise<parcel.Options> {
  const ignore: (string | RegExp)[] = recursive ? await rules.nativeGlobs(true) : [/\//];
  return ignore.length ? { ignore } : {};
}

/**
 * Records the state of a folder tree (paths, kinds and modification times) in `file`, for a later
 * {@link changesSince}: what changed while nobody was watching.
 * @throws WatchError `E_NOT_FOUND`, `E_NOT_DIR` (the folder), `E_PERMISSION`, `E_BACKEND` (the file cannot be written);
 *   `signal.reason` when aborted
 */
export async function writeSnapshot(
  path: string,
  file: string,
  options: SnapshotOptions = {},
): Promise<void> {
  const root = resolve(path);
  const filter = resolveFilter(options);
  options.signal?.throwIfAborted();
  await assertDir(root);
  const rules = new IgnoreRules(root, filter.ignore, filter.ignoreFiles);
  try {
    await parcel.writeSnapshot(root, resolve(file), await nativeOptions(rules, filter.recursive));
  } catch (error) {
    throw toWatchError(error, root);
  }
  options.signal?.throwIfAborted();
}

/** Folders recorded in a snapshot file: `<count>\n`, then `<byte length><path><mtime> <isDir>\n` per entry. */
function foldersOf(snapshot: Buffer): Set<string> {
  const folders = new Set<string>();
  let at = snapshot.indexOf(10) + 1;
  while (at > 0 && at < snapshot.length) {
    let digits = at;
    while (digits < snapshot.length && snapshot[digits]! >= 48 && snapshot[digits]! <= 57) digits++;
    const pathEnd = digits + Number(snapshot.toString('latin1', at, digits));
    const lineEnd = snapshot.indexOf(10, pathEnd);
    if (digits === at || lineEnd === -1) break;
    if (snapshot.toString('latin1', pathEnd, lineEnd).endsWith(' 1')) {
      folders.add(snapshot.toString('utf8', digits, pathEnd));
    }
    at = lineEnd + 1;
  }
  return folders;
}

/**
 * What changed under a folder since {@link writeSnapshot} wrote `file`: one event per path (`created`, `modified`,
 * `deleted`), filtered like a watcher's. Moves appear as `deleted` + `created` (a snapshot keeps no inodes), and a
 * folder replaced by a new one with the same name is not reported.
 * @throws WatchError `E_NOT_FOUND` (the folder or the snapshot file), `E_NOT_DIR`, `E_PERMISSION`, `E_BACKEND`;
 *   `signal.reason` when aborted
 */
export async function changesSince(
  path: string,
  file: string,
  options: SnapshotOptions = {},
): Promise<FileEvent[]> {
  const root = resolve(path);
  const snapshotFile = resolve(file);
  const filter = resolveFilter(options);
  options.signal?.throwIfAborted();
  await assertDir(root);
  let snapshot: Buffer;
  try {
    snapshot = await readFile(snapshotFile);
  } catch (error) {
    throw fromErrno(error, { path: snapshotFile, family: WatchError, action: 'read snapshot' });
  }
  const rules = new IgnoreRules(root, filter.ignore, filter.ignoreFiles);
  let raw: parcel.Event[];
  try {
    raw = await parcel.getEventsSince(root, snapshotFile, await nativeOptions(rules, filter.recursive));
  } catch (error) {
    throw toWatchError(error, root);
  }
  options.signal?.throwIfAborted();
  const folders = raw.some((e) => e.type === 'delete') ? foldersOf(snapshot) : new Set<string>();
  const prefix = `${root}/`;
  const timeMs = Date.now();
  const events: FileEvent[] = [];
  for (const e of raw) {
    if (!e.path.startsWith(prefix)) continue;
    const rel = e.path.slice(prefix.length);
    if (!filter.recursive && rel.includes('/')) continue;
    let isDir: boolean;
    if (e.type === 'delete') isDir = folders.has(e.path);
    else {
      try {
        isDir = (await lstat(e.path)).isDirectory();
      } catch {
        continue; // Deleted again since the backend listed it.
      }
    }
    const type = e.type === 'create' ? 'created' : e.type === 'update' ? 'modified' : 'deleted';
    if (!filter.types.has(type)) continue;
    await rules.loadAncestors(rel);
    if (rules.ignores(rel, isDir)) continue;
    events.push({ type, path: e.path, isDir, timeMs });
  }
  return events;
}
