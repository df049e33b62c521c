import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function field(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([u64(bytes.length), bytes]);
}

/** A raw child of a hand-made tree object, written exactly as given (no validation, no sorting). */
export interface RawEntry {
  readonly name: string;
  readonly digest?: string;
  readonly status: number;
  readonly target?: string;
}

export const FILE_644 = 0x010001a4;
export const DIR_755 = 0x020001ed;
export const LINK_777 = 0x040001ff;

/** Builds tree-object bytes by hand, so that trees encodeTree refuses to make can be tested. */
export function rawTree(entries: readonly RawEntry[]): Buffer {
  const parts: Buffer[] = [Buffer.from('ee3e0100', 'hex')];
  for (const e of entries) {
    const status = Buffer.alloc(4);
    status.writeUInt32LE(e.status >>> 0);
    parts.push(field(e.name), field(e.digest ?? ''), status);
    if (e.target !== undefined) parts.push(field(e.target));
  }
  return Buffer.concat(parts);
}

/** Describes a folder as sorted lines: `path type mode [content|target]`, `.fstree` left out. */
export async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (abs: string, rel: string) => {
    for (const name of (await readdir(abs)).sort()) {
      if (rel === '' && name === '.fstree') continue;
      const p = join(abs, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.push(`${r} link -> ${await readlink(p)}`);
      else if (st.isDirectory()) {
        out.push(`${r} dir ${mode}`);
        await visit(p, r);
      } else out.push(`${r} file ${mode} ${(await readFile(p)).toString('utf8').slice(0, 40)}`);
    }
  };
  await visit(dir, '');
  return out;
}
