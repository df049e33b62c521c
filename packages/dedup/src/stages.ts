import { CompareReadError, filesEqual } from './internal/compare.js';
import { fsPathOf, shown } from './internal/fs-path.js';
import { type DigestKey, hexOfKey } from './internal/hash-one.js';
import type { CandidateGroup, DedupFile, DedupStage, StageContext } from './types.js';

/** Splits `group` by a key computed per file; files whose key is `undefined` are left out. */
export function splitBy(
  group: CandidateGroup,
  keyOf: (file: DedupFile) => string | undefined,
): CandidateGroup[] {
  return splitByKey(group, keyOf);
}

/**
 * {@link splitBy} with keys that may be numbers (a CRC-32: no string per file) and the file's index in the group;
 * each group's `key` is the hex form of its key (see `hexOfKey`).
 */
export function splitByKey(
  group: CandidateGroup,
  keyOf: (file: DedupFile, index: number) => DigestKey | undefined,
): CandidateGroup[] {
  const files = group.files;
  if (files.length === 2) {
    // The common case after the size stage, without a Map.
    const a = keyOf(files[0]!, 0);
    return a !== undefined && a === keyOf(files[1]!, 1) ? [{ files, key: hexOfKey(a) }] : [];
  }
  // A key seen once maps to its file, and to an array only once a second file shares it: most keys are unique.
  const buckets = new Map<DigestKey, DedupFile | DedupFile[]>();
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const key = keyOf(file, i);
    if (key === undefined) continue;
    const bucket = buckets.get(key);
    if (bucket === undefined) buckets.set(key, file);
    else if (Array.isArray(bucket)) bucket.push(file);
    else buckets.set(key, [bucket, file]);
  }
  const out: CandidateGroup[] = [];
  for (const [key, bucket] of buckets)
    if (Array.isArray(bucket)) out.push({ files: bucket, key: hexOfKey(key) });
  return out;
}

/** The first stage: files of different sizes cannot be equal. Reads nothing. Its groups' key is `size:<bytes>`. */
export function sizeStage(): DedupStage {
  return {
    name: 'size',
    refine(group) {
      // Numeric keys: this stage sees every file of the tree at once.
      const bySize = new Map<number, DedupFile[]>();
      for (const file of group.files) {
        const same = bySize.get(file.size);
        if (same === undefined) bySize.set(file.size, [file]);
        else same.push(file);
      }
      const out: CandidateGroup[] = [];
      for (const [size, files] of bySize) if (files.length >= 2) out.push({ files, key: `size:${size}` });
      return out;
    },
  };
}

/**
 * A paranoid last stage, as `jdupes` does by default: compares the files byte for byte (streamed, 256 KiB at a
 * time, stopping at the first difference) so that a hash collision can never merge different files. Each group is
 * checked against its first file; files that differ form further groups, compared the same way.
 */
export function byteCompareStage(): DedupStage {
  return {
    name: 'bytes',
    async refine(group, ctx) {
      const out: CandidateGroup[] = [];
      let rest = [...group.files];
      let split = 0;
      while (rest.length >= 2) {
        const reference = rest[0]!;
        const same: DedupFile[] = [reference];
        const differ: DedupFile[] = [];
        let referenceFailed = false;
        for (let i = 1; i < rest.length; i++) {
          const file = rest[i]!;
          const equal = await compare(reference, file, ctx);
          if (equal === 'failed-a') {
            referenceFailed = true;
            differ.push(...rest.slice(i));
            break;
          }
          if (equal === true) same.push(file);
          else if (equal === false) differ.push(file);
        }
        if (referenceFailed) {
          // The reference is gone: start again from the files not yet placed, plus those found equal to it.
          rest = [...same.slice(1), ...differ];
          continue;
        }
        if (same.length >= 2)
          out.push({ files: same, key: split++ === 0 ? group.key : `${group.key}~${split}` });
        rest = differ;
      }
      return out;
    },
  };
}

async function compare(
  a: DedupFile,
  b: DedupFile,
  ctx: StageContext,
): Promise<boolean | 'failed-a' | 'failed-b'> {
  try {
    return await filesEqual(fsPathOf(a), fsPathOf(b), {
      signal: ctx.signal,
      onBytes: (n) => ctx.addBytes(n),
    });
  } catch (error) {
    if (!(error instanceof CompareReadError)) throw error;
    ctx.fail(error.error);
    return error.path === shown(fsPathOf(a)) ? 'failed-a' : 'failed-b';
  }
}
