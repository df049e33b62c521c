import { TreeError } from '@fsw/errors';

/** Digest algorithms fstree can be built with. Writing always uses `blake3`. */
export type DigestAlgorithm = 'blake3' | 'sha1';

/** A digest split into its algorithm and lowercase hex. */
export interface DigestParts {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
}

const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { blake3: 64, sha1: 40 };
const PREFIXED = /^(blake3|sha1):([0-9a-fA-F]+)$/;
const BARE = /^[0-9a-fA-F]+$/;

// The form every digest we write has: checked without a regex, as it is on the hot path of a tree walk.
function isCanonicalBlake3(text: string): boolean {
  if (text.length !== 71 || !text.startsWith('blake3:')) return false;
  for (let i = 7; i < 71; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** The normal form of a digest (`text` itself when already normal, no allocation), or `undefined`. @internal */
export function normalDigest(text: string): string | undefined {
  if (isCanonicalBlake3(text)) return text;
  const parts = tryParseDigest(text);
  return parts === undefined ? undefined : `${parts.algorithm}:${parts.hex}`;
}

/**
 * Splits a digest string into algorithm and lowercase hex, or returns `undefined` when it does not parse.
 * Accepts `blake3:<64 hex>`, `sha1:<40 hex>`, and bare hex (64 chars = blake3, 40 = sha1).
 */
export function tryParseDigest(text: string): DigestParts | undefined {
  if (isCanonicalBlake3(text)) return { algorithm: 'blake3', hex: text.slice(7) };
  const prefixed = PREFIXED.exec(text);
  if (prefixed) {
    const algorithm = prefixed[1] as DigestAlgorithm;
    const hex = prefixed[2] as string;
    return hex.length === HEX_LENGTH[algorithm] ? { algorithm, hex: hex.toLowerCase() } : undefined;
  }
  if (!BARE.test(text)) return undefined;
  if (text.length === 64) return { algorithm: 'blake3', hex: text.toLowerCase() };
  if (text.length === 40) return { algorithm: 'sha1', hex: text.toLowerCase() };
  return undefined;
}

/**
 * Splits a digest string into algorithm and lowercase hex.
 * @throws TreeError E_INVALID_ARGUMENT when `text` is not a digest
 */
export function splitDigest(text: string): DigestParts {
  const parts = tryParseDigest(text);
  if (parts === undefined) throw invalidDigest(text);
  return parts;
}

/**
 * Normalises a digest string to `blake3:<hex>` or `sha1:<hex>` (lowercase).
 * Accepts `blake3:<64 hex>`, `sha1:<40 hex>`, and bare hex: 64 chars is read as blake3, 40 as sha1 (as fstree does).
 * @throws TreeError E_INVALID_ARGUMENT when `text` is not a digest
 */
export function parseDigest(text: string): string {
  const { algorithm, hex } = splitDigest(text);
  return `${algorithm}:${hex}`;
}

/** True when `text` parses as a digest (see {@link parseDigest}). */
export function isDigest(text: string): boolean {
  return tryParseDigest(text) !== undefined;
}

/**
 * Formats raw digest bytes or hex as a digest string, `blake3:<hex>` by default.
 * @param algorithm - @default 'blake3'
 * @throws TreeError E_INVALID_ARGUMENT when the hex is not the algorithm's length
 */
export function formatDigest(value: Uint8Array | string, algorithm: DigestAlgorithm = 'blake3'): string {
  const hex = typeof value === 'string' ? value.toLowerCase() : Buffer.from(value).toString('hex');
  if (hex.length !== HEX_LENGTH[algorithm] || !BARE.test(hex)) {
    throw new TreeError('E_INVALID_ARGUMENT', `not a ${algorithm} digest: '${truncate(hex)}'`);
  }
  return `${algorithm}:${hex}`;
}

function invalidDigest(text: string): TreeError {
  return new TreeError(
    'E_INVALID_ARGUMENT',
    `not a digest: '${truncate(text)}' (expected blake3:<64 hex>, sha1:<40 hex> or bare hex)`,
  );
}

/** Shortens untrusted text for an error message. */
export function truncate(text: string, max = 80): string {
  const printable = text.replace(/[\u0000-\u001f\u007f]/g, '?');
  return printable.length > max ? `${printable.slice(0, max)}…` : printable;
}
