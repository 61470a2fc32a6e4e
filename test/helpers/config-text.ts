/** A DovecotConfig from config text (written to a temp file and loaded the real way). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import type { DovecotConfig } from '../../src/config/settings.js';

export async function parseConfigText(text: string): Promise<DovecotConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'sealmail-conf-'));
  try {
    writeFileSync(join(dir, 'dovecot.conf'), text);
    return await loadConfig(join(dir, 'dovecot.conf'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
