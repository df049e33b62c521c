export { ALGORITHMS, isHashAlgorithm } from './algorithms.js';
export { hashFile } from './hash-file.js';
export { closeHashPool, hashFileBatches, hashFiles, hashFilesIter } from './hash-files.js';
export { createHasher, engines, hashBlob, hashBytes, hashStream } from './hasher.js';
export type {
  HashAlgorithm,
  HashBytesOptions,
  Hasher,
  HashFileBatchesOptions,
  HashFileEntry,
  HashFileOptions,
  HashFilesIterOptions,
  HashFilesOptions,
  HashFilesResult,
  HashProgress,
  HashRange,
  HashResult,
  HashStreamOptions,
  StreamHasher,
} from './types.js';
