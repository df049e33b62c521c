import { type DigestAlgorithm, tryParseDigest } from '@fsw/tree';

/** An object id in canonical form. */
export interface Digest {
  readonly algorithm: DigestAlgorithm;
  /** Lowercase hex, without the prefix. */
  readonly hex: string;
  /** `<algorithm>:<hex>`: the key the server files the object under. */
  readonly full: string;
}

/**
 * Reads an object id as fstree clients send it: `blake3:<64 hex>`, `sha1:<40 hex>`, or bare hex (64 chars: blake3,
 * 40 chars: sha1). Returns undefined for anything else.
 */
export function parseDigest(text: string): Digest | undefined {
  const parts = tryParseDigest(text);
  return parts && { algorithm: parts.algorithm, hex: parts.hex, full: `${parts.algorithm}:${parts.hex}` };
}
