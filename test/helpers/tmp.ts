/** Temporary directories that vanish after the test (unless KEEP_TMP is set). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export function tempDir(t: TestContext | null, label = 'sealmail'): string {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  if (t && !process.env.KEEP_TMP) t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
