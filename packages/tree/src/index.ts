export type { CheckoutOptions, CheckoutProgress, CheckoutResult } from './checkout.js';
export { checkout } from './checkout.js';
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
export type { DiffTreesOptions, TreeDiff, VerifyTreeOptions, VerifyTreeResult } from './diff.js';
export { diffTrees, verifyTree } from './diff.js';
export type { DigestAlgorithm, DigestParts } from './digest.js';
export { formatDigest, isDigest, parseDigest, splitDigest, tryParseDigest } from './digest.js';
export type { LsTreeEntry, LsTreeOptions, ReadTreeOptions } from './read-tree.js';
export { lsTree, readTree } from './read-tree.js';
export type {
  EvictOptions,
  EvictResult,
  LocalStore,
  ObjectLocation,
  OpenStoreOptions,
  PutFileResult,
} from './store.js';
export { DEFAULT_CACHE_BYTES, DEFAULT_RETENTION_MS, defaultStoreDir, openStore } from './store.js';
export type {
  ObjectKind,
  PutManyOptions,
  PutManyResult,
  Store,
  TreeEntry,
  TreeEntryType,
  VerifiedObject,
} from './types.js';
export type { HashTreeOptions, WriteTreeOptions, WriteTreeProgress } from './write-tree.js';
export { hashTree, writeTree } from './write-tree.js';
