#!/usr/bin/env node
// Packs every package the way `pnpm publish` would, installs the tarballs into a fresh temp project with plain
// `npm install`, then imports each one from Node and type-checks a TypeScript consumer against the shipped types.
// This catches what unit tests cannot: a missing file in `files`, a wrong `exports` map, a dependency left in
// devDependencies, types that point at nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const require = createRequire(join(root, 'package.json'));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const publint = join(root, 'node_modules', 'publint', 'src', 'cli.js');
const work = mkdtempSync(join(tmpdir(), 'fsw-pack-'));
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

try {
  const packages = readdirSync(join(root, 'packages'))
    .map((name) => ({
      dir: join(root, 'packages', name),
      pkg: JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8')),
    }))
    .filter(({ pkg }) => !pkg.private);
  const tarballs = [];
  for (const { dir, pkg } of packages) {
    run(process.execPath, [publint, '--strict', dir], dir);
    const out = run('pnpm', ['pack', '--pack-destination', work], dir).trim().split('\n').pop();
    tarballs.push(resolve(dir, out));
    process.stdout.write(`packed ${pkg.name} -> ${out}\n`);
  }
  const consumer = join(work, 'consumer');
  run('mkdir', ['-p', consumer]);
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], consumer);

  const names = packages.map(({ pkg }) => pkg.name);
  const check = names.map((n) => `import * as m${names.indexOf(n)} from '${n}';`).join('\n');
  writeFileSync(
    join(consumer, 'check.mjs'),
    `${check}\nconst mods = { ${names.map((n, i) => `'${n}': m${i}`).join(', ')} };\n` +
      `for (const [name, mod] of Object.entries(mods)) { if (Object.keys(mod).length === 0) throw new Error(name + ' exports nothing'); console.log(name, Object.keys(mod).length, 'exports'); }\n`,
  );
  run(process.execPath, ['check.mjs'], consumer);
  process.stdout.write(run(process.execPath, ['check.mjs'], consumer));

  // Types: a consumer compiled with NodeNext resolution must see every package's declarations.
  writeFileSync(
    join(consumer, 'check.ts'),
    `${check}\nexport const all = [${names.map((_, i) => `m${i}`).join(', ')}];\n`,
  );
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
      },
      files: ['check.ts'],
    }),
  );
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      `@types/node@${require('@types/node/package.json').version}`,
    ],
    consumer,
  );
  run(process.execPath, [tsc, '-p', 'tsconfig.json'], consumer);
  process.stdout.write(
    `pack check: ${names.length} packages packed, installed with npm, imported and type-checked\n`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
