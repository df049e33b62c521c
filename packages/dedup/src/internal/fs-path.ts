/**
 * A path as `node:fs` takes it: the exact bytes of a name that is not valid UTF-8 (a `Buffer`), else the string.
 * Such a path is shown (in errors, in output) by its lossy decoding, invalid bytes as U+FFFD.
 */
export type FsPath = string | Buffer;

/** The path to show for `path`: itself, or the lossy UTF-8 decoding of its bytes. */
export function shown(path: FsPath): string {
  return typeof path === 'string' ? path : path.toString('utf8');
}

/** What to open for a file: its exact bytes when its name is not valid UTF-8, else its path. */
export function fsPathOf(file: { readonly path: string; readonly rawPath?: Buffer | undefined }): FsPath {
  return file.rawPath ?? file.path;
}

/** The NUL-free `latin1` string of a path's bytes, and back: how raw paths travel to a helper thread. */
export function bytesToLatin1(bytes: Buffer): string {
  return bytes.toString('latin1');
}

export function latin1ToBytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}
