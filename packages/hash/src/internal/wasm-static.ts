import {
  createBLAKE3,
  createCRC32,
  createMD5,
  createSHA1,
  createSHA256,
  createSHA512,
  createXXHash3,
  createXXHash64,
  createXXHash128,
  type IHasher,
} from 'hash-wasm';
import type { HashAlgorithm } from '../types.js';
import type { Engine, RawHasher } from './raw.js';

// Named imports, so that bundlers keep only these nine of hash-wasm's algorithms.
const FACTORIES: Readonly<Record<HashAlgorithm, () => Promise<IHasher>>> = {
  blake3: () => createBLAKE3(256),
  sha256: () => createSHA256(),
  sha512: () => createSHA512(),
  sha1: () => createSHA1(),
  md5: () => createMD5(),
  xxh3: () => createXXHash3(0, 0),
  xxh128: () => createXXHash128(0, 0),
  xxh64: () => createXXHash64(0, 0),
  crc32: () => createCRC32(),
};

function wrap(h: IHasher): RawHasher {
  h.init();
  return {
    update(data) {
      h.update(data);
    },
    digest() {
      return h.digest('binary');
    },
    reset() {
      h.init();
    },
  };
}

/** hash-wasm: every algorithm, everywhere (Node, browsers, workers); the portable fallback. */
export const wasmEngine: Engine = {
  name: 'hash-wasm',
  async create(algorithm) {
    return wrap(await FACTORIES[algorithm]());
  },
};
