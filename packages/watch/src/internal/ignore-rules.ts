import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** Splits an ignore file into its lines (the `ignore` package drops comments and blanks itself). */
function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * gitignore-style filtering of paths relative to the watched root: the `ignore` option plus ignore files found in
 * each folder (a nested file applies to its subtree). The JS side is authoritative; {@link nativeGlobs} only lets the
 * native backend skip folders that can never be re-included.
 */
export class IgnoreRules {
  readonly #root: string;
  readonly #patterns: readonly string[];
  readonly #files: ReadonlySet<string>;
  // Relative folder ('' for the root) -> rules of its ignore files. The root entry also holds the `ignore` option.
  readonly #byDir = new Map<string, Ignore>();
  readonly #loaded = new Set<string>();
  #negated = false;

  constructor(root: string, patterns: readonly string[], ignoreFiles: readonly string[]) {
    this.#root = root;
    this.#patterns = patterns;
    this.#files = new Set(ignoreFiles);
    if (patterns.some((p) => p.trimStart().startsWith('!'))) this.#negated = true;
    if (patterns.length > 0) this.#byDir.set('', ignore().add([...patterns]));
  }

  /** True when nothing can ever be ignored (the common case: skip all matching). */
  get empty(): boolean {
    return this.#patterns.length === 0 && this.#files.size === 0;
  }

  /** True when `name` is one of the ignore files. */
  isIgnoreFile(name: string): boolean {
    return this.#files.has(name);
  }

  /** Reads the ignore files of one folder (relative, '' for the root); missing files are fine. */
  async loadDir(relDir: string, force = false): Promise<void> {
    if (this.#files.size === 0 || (!force && this.#loaded.has(relDir))) return;
    this.#loaded.add(relDir);
    const texts: string[] = [];
    for (const name of this.#files) {
      try {
        texts.push(await readFile(join(this.#root, relDir, name), 'utf8'));
      } catch (error) {
        // A folder without the file, or one that vanished meanwhile: no rules from it.
        const code = (error as { code?: unknown }).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') throw error;
      }
    }
    const rules = relDir === '' && this.#patterns.length > 0 ? [...this.#patterns] : [];
    for (const text of texts) rules.push(...lines(text));
    if (rules.some((r) => r.trimStart().startsWith('!'))) this.#negated = true;
    if (rules.length === 0) this.#byDir.delete(relDir);
    else this.#byDir.set(relDir, ignore().add(rules));
  }

  /** Loads the ignore files of every folder above `rel` (for callers that did not scan the tree). */
  async loadAncestors(rel: string): Promise<void> {
    if (this.#files.size === 0) return;
    await this.loadDir('');
    let at = rel.indexOf('/');
    while (at !== -1) {
      await this.loadDir(rel.slice(0, at));
      at = rel.indexOf('/', at + 1);
    }
  }

  /**
   * True when the `/`-separated path below the root is excluded: by an excluded parent folder (which nothing can
   * re-include), else by the deepest ignore file with an opinion on it (a nested `!pattern` re-includes).
   */
  ignores(rel: string, isDir: boolean): boolean {
    if (this.#byDir.size === 0) return false;
    const slash = rel.lastIndexOf('/');
    if (slash !== -1 && this.ignores(rel.slice(0, slash), true)) return true;
    const test = isDir ? `${rel}/` : rel;
    for (let at = slash; at !== -1; at = rel.lastIndexOf('/', at - 1)) {
      const verdict = this.#byDir.get(rel.slice(0, at))?.test(test.slice(at + 1));
      if (verdict?.ignored) return true;
      if (verdict?.unignored) return false;
      if (at === 0) break;
    }
    return this.#byDir.get('')?.ignores(test) ?? false;
  }

  /**
   * Globs (relative to the root) the native backend may skip entirely: the `ignore` option and the root ignore files,
   * translated from gitignore syntax, or none at all when any rule re-includes with `!` (a skipped folder cannot be
   * re-included). `anchoredToo: false` keeps only the patterns that match at any depth, for watchers rooted below.
   */
  async nativeGlobs(anchoredToo: boolean): Promise<string[]> {
    await this.loadDir('');
    if (this.#negated) return [];
    const sources = [...this.#patterns];
    for (const name of this.#files) {
      try {
        sources.push(...lines(await readFile(join(this.#root, name), 'utf8')));
      } catch {
        // Missing root ignore file: nothing to translate (loadDir already reported real failures).
      }
    }
    const globs: string[] = [];
    for (const raw of sources) {
      const translated = toGlob(raw);
      if (translated === undefined || (!anchoredToo && translated.anchored)) continue;
      globs.push(...translated.globs);
    }
    return globs;
  }
}

/** gitignore pattern -> picomatch globs, or undefined for what is not safely translatable (left to the JS side). */
function toGlob(raw: string): { globs: string[]; anchored: boolean } | undefined {
  let p = raw.trim();
  if (p === '' || p.startsWith('#') || p.startsWith('!') || p.includes('\\')) return undefined;
  const dirOnly = p.endsWith('/');
  if (dirOnly) p = p.replace(/\/+$/, '');
  if (p === '' || p === '**') return undefined;
  const anchored = p.includes('/');
  if (p.startsWith('/')) p = p.slice(1);
  const base = anchored ? p : `**/${p}`;
  // A folder-only pattern keeps the folder itself visible (its own events are filtered on the JS side).
  return { globs: dirOnly ? [`${base}/**`] : [base, `${base}/**`], anchored };
}
