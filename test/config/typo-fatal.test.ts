/**
 * A misspelled setting must never fall back to its default silently: the
 * server refuses the ISPmail sample tree with one typo in it, with doveconf's
 * text and file:line and exit 89, before it opens any listener — as
 * `dovecot` does (its doveconf child fails the same way).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sealmailJs } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { spawnOwned } from '../helpers/children.js';

for (const [label, edit, want] of [
  ['a misspelled global setting', (t: string) => t.replace(/^mail_location =/m, 'mail_locaton ='), /10-mail\.conf line \d+: Unknown setting: mail_locaton$/m],
  ['a misspelled section', (t: string) => t.replace(/^service lmtp \{/m, 'servce lmtp {'), /10-master\.conf line \d+: Unknown setting: servce \{ servce$/m],
] as const) {
  test(`the server refuses the sample tree with ${label}: exit 89 with Dovecot's text, no listener opened`, async (t) => {
    const dir = tempDir(t, 'typo');
    cpSync(join(repoRoot, 'conf.d'), dir, { recursive: true });
    const file = join(dir, label.includes('section') ? '10-master.conf' : '10-mail.conf');
    const before = readFileSync(file, 'utf8');
    const after = edit(before);
    assert.notEqual(after, before, `the sample ${file} has the line this test misspells`);
    writeFileSync(file, after);
    const child = spawnOwned(t, process.execPath, [sealmailJs, '-c', join(dir, 'dovecot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    // settles on exit, or as soon as the server says it listens (a server that accepted the typo)
    const code = await new Promise<number | null>((resolve) => {
      const seen = (d: Buffer) => { out += d; if (out.includes('listening on')) resolve(null); };
      child.stdout!.on('data', seen);
      child.stderr!.on('data', seen);
      child.once('exit', resolve);
    });
    assert.equal(code, 89, out);
    assert.match(out, /^doveconf: Fatal: Error in configuration file /m);
    assert.match(out, want);
    assert.doesNotMatch(out, /listening on/);
  });
}
