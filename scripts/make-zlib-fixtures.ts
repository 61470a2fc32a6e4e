/**
 * Writes test/fixtures/dovecot-zlib: messages stored by the real Dovecot
 * 2.3 zlib plugin (doveadm save with plugin/zlib_save=<format>) next to
 * their plaintexts, so the decompressors are tested against what Dovecot
 * really writes without needing Dovecot or any compression tool at test
 * time (xz files, which Dovecot reads but cannot write, come from xz-utils).
 * Run after a build: `node dist/scripts/make-zlib-fixtures.js`.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../test/helpers/dovecot.js';
import { fixturesDir } from '../test/helpers/paths.js';
import { zlibPlaintexts } from '../test/helpers/zlib-plaintexts.js';

const out = join(fixturesDir, 'dovecot-zlib');
mkdirSync(out, { recursive: true });
const dv = setupDovecot(null, { start: true, extraConf: 'mail_plugins = $mail_plugins zlib\n' });
if (!dv) throw new Error('Dovecot is not installed');
try {
  const manifest: { file: string; format: string; plaintext: string; dovecotName: string; writtenBy?: string }[] = [];
  for (const [name, text] of Object.entries(zlibPlaintexts())) {
    writeFileSync(join(out, `${name}.eml`), text);
    for (const format of ['gz', 'bz2', 'lz4', 'zstd']) {
      const user = `${format}-${name}`;
      const r = dv.doveadm(['-o', `plugin/zlib_save=${format}`, 'save', '-u', user], text);
      if (r.status !== 0) throw new Error(`doveadm save ${format}: ${r.stderr}`);
      const dir = join(dv.home(user), 'Maildir', 'new');
      const [file] = readdirSync(dir);
      const target = `${name}.${format}`;
      copyFileSync(join(dir, file), join(out, target));
      manifest.push({ file: target, format, plaintext: `${name}.eml`, dovecotName: file.replace(/^.*?(,S=)/, '$1') });
    }
  }
  // Dovecot reads xz but cannot write it (zlib_save: Support not compiled in for handler: xz): xz-utils makes those
  for (const [name, text] of Object.entries(zlibPlaintexts())) {
    const xz = spawnSync('xz', ['-c'], { input: text });
    if (xz.status !== 0) throw new Error('xz (xz-utils) is needed for the xz fixtures');
    writeFileSync(join(out, `${name}.xz`), xz.stdout);
    const size = Buffer.byteLength(text);
    manifest.push({ file: `${name}.xz`, format: 'xz', plaintext: `${name}.eml`, dovecotName: `,S=${size},W=${size + text.split('\n').length - 1}`, writtenBy: 'xz 5.4.1 (xz -c): Dovecot 2.3.19 reads xz but cannot write it' });
  }
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
} finally { dv.stop(); }
