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

/**
 * The in-process LMTP tests' tree: static passdb/userdb with homes under
 * `dir`/home, Sieve in LMTP; `plugin` is the plugin {} block's lines,
 * `extra` any further text (namespaces, other settings).
 */
export function lmtpSieveConfig(dir: string, plugin: string, extra = ''): Promise<DovecotConfig> {
  return parseConfigText(`mail_location = maildir:~/Maildir
passdb {
  driver = static
  args = password=pass
}
userdb {
  driver = static
  args = home=${dir}/home/%u
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
plugin {
${plugin}}
${extra}`);
}
