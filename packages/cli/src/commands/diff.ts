import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { outputFor, withOutputOptions } from '../context.js';
import { UsageError } from '../format.js';
import { reportError } from '../main.js';
import type { Register } from './index.js';
import {
  ignoreFile,
  storeOptions,
  type TreeFlags,
  threads,
  withCacheOption,
  withVerifyOption,
  withWalkOptions,
} from './tree-options.js';

const STATUS = [
  ['added', 'A'],
  ['removed', 'D'],
  ['modified', 'M'],
  ['typeChanged', 'T'],
] as const;

/** A side of the diff: an existing folder, else a digest. */
async function side(text: string): Promise<{ dir: string } | { digest: string }> {
  const isDir = await stat(text).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isDir) return { dir: text };
  const { tryParseDigest } = await import('@fsw/tree');
  const parts = tryParseDigest(text);
  if (parts === undefined) throw new UsageError(`'${text}' is neither a folder nor a digest`);
  return { digest: `${parts.algorithm}:${parts.hex}` };
}

/** `fsw diff A B`: what differs between two trees (or a tree and a folder). */
export const register: Register = (program: Command, ctx) => {
  withOutputOptions(
    withVerifyOption(
      withWalkOptions(
        withCacheOption(
          program
            .command('diff')
            .description(
              'compare two trees, or a tree and a folder: "A|D|M|T\\tpath" per difference; exit 0 when they are equal, 1 when they differ, 2 on trouble (an error: a missing object, an unreadable file, a bad argument)',
            )
            .argument('<a>', 'a tree digest, or a folder')
            .argument('<b>', 'a tree digest, or a folder'),
        ),
      ),
    ),
  ).action(async (aText: string, bText: string, flags: TreeFlags) => {
    try {
      await run(aText, bText, flags);
    } catch (error) {
      // Like diff(1) and cmp(1): 2 for trouble, so that 1 always means "they differ" (usage errors are 2 already).
      if (error instanceof UsageError) throw error;
      reportError(error, ctx.io);
      ctx.setExitCode(2);
    }
  });

  async function run(aText: string, bText: string, flags: TreeFlags): Promise<void> {
    const out = outputFor(ctx, flags);
    const [a, b] = await Promise.all([side(aText), side(bText)]);
    const concurrency = threads(ctx, flags);
    const { diffTrees, openStore, verifyTree } = await import('@fsw/tree');
    const where = storeOptions(ctx, flags);
    const store = openStore(where.dir, { verify: where.verify });
    // A folder is hashed as write-tree would (its index trusted), storing nothing; the tree comes from the store.
    const verify = (dir: string, digest: string) =>
      verifyTree(dir, digest, {
        store,
        ignoreFile: ignoreFile(ctx, flags),
        index: true,
        ...(concurrency === undefined ? {} : { concurrency }),
      });
    let diff: { added: string[]; removed: string[]; modified: string[]; typeChanged: string[] };
    if ('digest' in a && 'digest' in b) {
      diff = await diffTrees(a.digest, b.digest, { store });
    } else if ('digest' in a && 'dir' in b) {
      diff = await verify(b.dir, a.digest);
    } else if ('dir' in a && 'digest' in b) {
      // verifyTree reports from the folder's side: turn it around so that "added" means "in B only".
      const v = await verify(a.dir, b.digest);
      diff = { added: v.removed, removed: v.added, modified: v.modified, typeChanged: v.typeChanged };
    } else {
      throw new UsageError('two folders: write-tree one of them and compare with its digest');
    }
    const lines: string[] = [];
    for (const [key, letter] of STATUS) {
      for (const path of diff[key])
        lines.push(out.json ? JSON.stringify({ status: key, path }) : `${letter}\t${path}`);
    }
    if (!out.json) lines.sort((x, y) => (x.slice(2) < y.slice(2) ? -1 : x.slice(2) > y.slice(2) ? 1 : 0));
    if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
    // Like diff(1): 1 when the sides differ.
    ctx.setExitCode(out.failed || lines.length > 0 ? 1 : 0);
  }
};
