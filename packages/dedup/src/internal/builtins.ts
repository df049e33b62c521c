/**
 * `node:crypto`, loaded on first use: its modules cost ~10 ms at import, which a run that neither reads nor writes a
 * cache file, nor replaces a file, does not need to pay.
 */
export function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto') as typeof import('node:crypto');
}
