import type { Hash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { HashAlgorithm } from '../types.js';
import type { Engine, RawHasher } from './raw.js';
import { wasmEngine } from './wasm.js';

interface NativeBlake3 {
  update(input: Uint8Array | string): unknown;
  digest(format: 'hex'): string;
  digestBuffer(): Uint8Array;
  reset(): void;
}
type NativeBlake3Class = new () => NativeBlake3;

let nativeClass: NativeBlake3Class | null | undefined;

/**
 * The `Blake3Hasher` of the optional dependency `@napi-rs/blake-hash`, or null when it is not installed, fails to
 * load (no prebuilt binary for this platform) or is disabled with `FSW_HASH_NATIVE=0`.
 */
function loadNative(): NativeBlake3Class | null {
  if (nativeClass !== undefined) return nativeClass;
  nativeClass = null;
  if (process.env.FSW_HASH_NATIVE === '0') return nativeClass;
  try {
    const mod = createRequire(import.meta.url)('@napi-rs/blake-hash') as { Blake3Hasher?: NativeBlake3Class };
    const Ctor = mod.Blake3Hasher;
    if (typeof Ctor === 'function') {
      // Guard against a broken or incompatible build: BLAKE3("abc") must be the published value.
      const probe = new Ctor();
      probe.update(new Uint8Array([0x61, 0x62, 0x63]));
      const hex = Buffer.from(probe.digestBuffer()).toString('hex');
      if (hex === '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85') nativeClass = Ctor;
    }
  } catch {
    // Optional dependency absent or without a binary for this platform: hash-wasm takes over.
  }
  return nativeClass;
}

const nativeEngine: Engine = {
  name: 'native',
  create() {
    const Ctor = loadNative();
    if (Ctor === null) throw new Error('native BLAKE3 is not available');
    const h = new Ctor();
    return {
      update(data) {
        h.update(data);
      },
      digest() {
        return new Uint8Array(h.digestBuffer());
      },
      digestHex() {
        return h.digest('hex');
      },
      reset() {
        h.reset();
      },
    };
  },
};

const NODE_NAMES: Partial<Record<HashAlgorithm, string>> = {
  sha256: 'sha256',
  sha512: 'sha512',
  sha1: 'sha1',
  md5: 'md5',
};

const cryptoEngine: Engine = {
  name: 'node:crypto',
  create(algorithm) {
    const name = NODE_NAMES[algorithm];
    if (name === undefined) throw new Error(`node:crypto does not implement ${algorithm}`);
    // node:crypto and node:zlib are loaded on first use (~5 ms each): most runs hash BLAKE3 only.
    const { createHash } = process.getBuiltinModule('node:crypto');
    let h: Hash = createHash(name);
    return {
      update(data) {
        h.update(data);
      },
      digest() {
        return new Uint8Array(h.digest());
      },
      digestHex() {
        return h.digest('hex');
      },
      reset() {
        h = createHash(name);
      },
    };
  },
};

type Crc32 = (data: Uint8Array | string, value?: number) => number;

/** zlib.crc32 exists from Node 20.15 / 22.2; on older runtimes hash-wasm computes CRC-32. */
function zlibCrc32(): Crc32 | undefined {
  return (process.getBuiltinModule('node:zlib') as { crc32?: Crc32 }).crc32;
}

const zlibEngine: Engine = {
  name: 'node:zlib',
  create() {
    const crc32 = zlibCrc32()!;
    let value = 0;
    return {
      update(data) {
        value = crc32(data, value);
      },
      digest() {
        const out = new Uint8Array(4);
        new DataView(out.buffer).setUint32(0, value >>> 0);
        return out;
      },
      reset() {
        value = 0;
      },
    };
  },
};

/** The fastest engine available here for `algorithm`. */
export function engineFor(algorithm: HashAlgorithm): Engine {
  if (algorithm === 'blake3') return loadNative() !== null ? nativeEngine : wasmEngine;
  if (NODE_NAMES[algorithm] !== undefined) return cryptoEngine;
  if (algorithm === 'crc32' && typeof zlibCrc32() === 'function') return zlibEngine;
  return wasmEngine;
}

const idle = new Map<HashAlgorithm, RawHasher[]>();

/** A reset hasher for `algorithm`, reused from earlier calls when one is free. Return it with {@link release}. */
export async function acquire(algorithm: HashAlgorithm): Promise<{ hasher: RawHasher; engine: string }> {
  const engine = engineFor(algorithm);
  const free = idle.get(algorithm)?.pop();
  if (free !== undefined) return { hasher: free, engine: engine.name };
  return { hasher: await engine.create(algorithm), engine: engine.name };
}

/** Gives `hasher` back for reuse; keeps a few per algorithm (one per concurrent hash is plenty). */
export function release(algorithm: HashAlgorithm, hasher: RawHasher): void {
  hasher.reset();
  let list = idle.get(algorithm);
  if (list === undefined) {
    list = [];
    idle.set(algorithm, list);
  }
  if (list.length < 16) list.push(hasher);
}
