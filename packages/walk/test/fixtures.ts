import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type WalkEntry, type WalkOptions, walk, walkAll } from '@fsw/walk';

/** A fresh temp dir (real path), removed by the returned cleanup. */
export async function tempDir(): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), 'fsw-walk-')));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Builds files (`'a/b.txt': 'text'`), empty dirs (`'d/': null`) and symlinks (`'l': { link: 'target' }`). */
export async function makeTree(
  root: string,
  spec: Record<string, string | null | { link: string }>,
): Promise<void> {
  for (const [rel, value] of Object.entries(spec)) {
    const path = join(root, rel);
    if (value === null) {
      await mkdir(path, { recursive: true });
      continue;
    }
    await mkdir(dirname(path), { recursive: true });
    if (typeof value === 'string') await writeFile(path, value);
    else await symlink(value.link, path);
  }
}

/** The relative paths `walk` yields, sorted. */
export async function relsOf(root: string, options?: WalkOptions): Promise<string[]> {
  const out: string[] = [];
  for await (const e of walk(root, options)) out.push(e.relativePath);
  return out.sort();
}

/** The relative paths `walkAll` yields, sorted. */
export async function relsAll(root: string, options?: WalkOptions): Promise<string[]> {
  return (await walkAll(root, options)).map((e) => e.relativePath).sort();
}

/** Entries of `walk`, as an array. */
export async function collect(root: string, options?: WalkOptions): Promise<WalkEntry[]> {
  const out: WalkEntry[] = [];
  for await (const e of walk(root, options)) out.push(e);
  return out;
}

const WALK_ENTRY = createRequire(import.meta.url).resolve('@fsw/walk');

/**
 * Runs `script` (an ES module body with `walk`, `walkAll` and `root` in scope, printing JSON on stdout) in a child
 * process without root privileges: root ignores permission bits, so permission errors can only be seen as another
 * user. As root the child runs as `nobody` (uid/gid 65534).
 */
export function runUnprivileged(
  script: string,
  root: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const source = `import { walk, walkAll } from ${JSON.stringify(WALK_ENTRY)};\nconst root = ${JSON.stringify(root)};\n${script}`;
  const asRoot = process.getuid?.() === 0;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      cwd: '/',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Whether {@link runUnprivileged} can work here: as root, the user `nobody` must be able to load the built package
 * and enter a temp dir (a checkout under a private home directory would forbid it).
 */
export async function canRunUnprivileged(): Promise<boolean> {
  const dir = await tempDir();
  try {
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'probe'), '');
    const r = await runUnprivileged('console.log((await walkAll(root)).length);', dir);
    return r.code === 0 && r.stdout === '1\n';
  } finally {
    await removeDir(dir);
  }
}
