/** Temporary directories that vanish after the test and its children (unless KEEP_TMP is set). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { reap } from './children.js';

export function tempDir(t: TestContext | null, label = 'sealmail'): string {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  // the test's children die first: a server still running must not write into a removed tree
  if (t && !process.env.KEEP_TMP) t.after(async () => { await reap(t); rmSync(dir, { recursive: true, force: true }); });
  return dir;
}
