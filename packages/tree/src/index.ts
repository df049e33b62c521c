export {
  compareNames,
  decodeTree,
  encodeTree,
  entryStatus,
  nameProblem,
  statusType,
  TREE_MAGIC,
  TREE_VERSION,
} from './codec.js';
export type { DigestAlgorithm, DigestParts } from './digest.js';
export { formatDigest, isDigest, parseDigest, splitDigest, tryParseDigest } from './digest.js';
export type { ObjectKind, Store, TreeEntry, TreeEntryType } from './types.js';
