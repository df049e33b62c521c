const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** `1536` -> `1.5 KiB`; whole bytes below 1 KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

/**
 * Parses a size such as `10GiB`, `512M`, `4k` or `1000`: binary units (K=KiB); `B` optional.
 * @throws UsageError for anything else
 */
export function parseBytes(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$/i.exec(text);
  if (!match) throw new UsageError(`invalid size '${text}' (expected e.g. 4096, 512K, 10GiB)`);
  const power = ' kmgtp'.indexOf((match[2] ?? '').toLowerCase() || ' ');
  return Math.round(Number(match[1]) * 1024 ** power);
}

/**
 * Parses a duration such as `90s`, `15m`, `1h`, `2d` or a bare number of seconds, into milliseconds.
 * @throws UsageError for anything else
 */
export function parseDurationMs(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!match) throw new UsageError(`invalid duration '${text}' (expected e.g. 90s, 15m, 1h, 2d)`);
  const factor =
    { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 's').toLowerCase()] ?? 1000;
  return Math.round(Number(match[1]) * factor);
}

/**
 * Parses a non-negative integer option value.
 * @throws UsageError for anything else
 */
export function parseCount(text: string, what = 'number'): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`invalid ${what} '${text}' (expected a whole number)`);
  return Number(text);
}

/** A mistake in how the command was called: reported as `fsw: <message>` with exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
