import type { Engine } from './raw.js';

// hash-wasm is loaded on first use in Node: it embeds its WebAssembly binaries as base64 and costs tens of
// milliseconds to parse, which processes and workers that only use native BLAKE3 or node:crypto should not pay.
let loading: Promise<typeof import('./wasm-static.js')> | undefined;

/** The hash-wasm engine, loaded lazily. */
export const wasmEngine: Engine = {
  name: 'hash-wasm',
  async create(algorithm) {
    loading ??= import('./wasm-static.js');
    return (await loading).wasmEngine.create(algorithm);
  },
};
