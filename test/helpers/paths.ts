/**
 * Where things are, for tests: the repository root (fixtures, sample config)
 * and the compiled tree (to spawn bin entry points without a shell).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
/** Root of the compiled tree: dist/ (this file is dist/test/helpers/paths.js). */
export const distRoot = resolve(here, '..', '..');

function findRepoRoot(): string {
  for (const start of [here, process.cwd()]) {
    let dir = start;
    for (;;) {
      const pj = join(dir, 'package.json');
      if (existsSync(pj)) {
        try { if (JSON.parse(readFileSync(pj, 'utf8')).name === 'sealmail') return dir; } catch { /* keep looking */ }
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error('cannot find the sealmail repository root');
}

export const repoRoot = findRepoRoot();
export const fixturesDir = join(repoRoot, 'test', 'fixtures');
export const sealadmJs = join(distRoot, 'src', 'cli', 'sealadm.js');
export const sealmailJs = join(distRoot, 'src', 'server', 'main.js');
