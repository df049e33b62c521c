import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks `authorization: Bearer <token>` headers in constant time (the scheme name in any case, as RFC 6750 allows).
 * With no token configured every caller passes.
 */
export function createAuthCheck(token: string | undefined): (header: string | undefined) => boolean {
  if (token === undefined) return () => true;
  // Comparing fixed-size hashes keeps the comparison constant-time whatever the lengths.
  const expected = createHash('sha256').update(token).digest();
  return (header) => {
    if (typeof header !== 'string') return false;
    const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return false;
    const given = createHash('sha256')
      .update(match[1] ?? '')
      .digest();
    return timingSafeEqual(given, expected);
  };
}
