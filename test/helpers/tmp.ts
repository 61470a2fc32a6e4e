/** Temporary directories that vanish after the test and its children (unless KEEP_TMP is set). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { onAbort, reap } from './children.js';

export function tempDir(t: TestContext | null, label = 'sealmail'): string {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  // the test's children die first: a server still running must not write into a removed tree
  // (and when the test process is stopped mid-test, after its children were killed: children.ts)
  if (t && !process.env.KEEP_TMP) {
    const remove = () => rmSync(dir, { recursive: true, force: true });
    const unregister = onAbort(remove);
    t.after(async () => { await reap(t); remove(); unregister(); });
  }
  return dir;
}
