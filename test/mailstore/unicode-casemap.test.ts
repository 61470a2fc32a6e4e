/**
 * i;unicode-casemap (src/mailstore/unicode-casemap.ts) equals what the
 * installed Dovecot's uni_utf8_to_decomposed_titlecase() makes of every code
 * point: scripts/dovecot-casemap-dump.c is compiled against libdovecot.so and
 * its dump compared with Sealmail's mapping of each code point, plus a few
 * strings whose form the IMAP differential (scripts/51-i18n-casemap.imap)
 * relies on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { casemap } from '../../src/mailstore/unicode-casemap.js';
import { inCI, requireTool, run } from '../helpers/tools.js';
import { tempDir } from '../helpers/tmp.js';
import { repoRoot } from '../helpers/paths.js';

test('casemap: every code point as the installed libdovecot maps it', (t) => {
  const gcc = requireTool(t, 'gcc');
  if (!gcc) return;
  if (!existsSync('/usr/lib/dovecot/libdovecot.so')) {
    // with CI=true a missing oracle fails the run (dovecot-core is in .ci/run's list)
    if (inCI) throw new Error('CI=true and libdovecot.so is not installed');
    t.skip('libdovecot.so is not installed');
    return;
  }
  const bin = join(tempDir(t, 'casemap'), 'dump');
  run(gcc, ['-O2', '-o', bin, join(repoRoot, 'scripts/dovecot-casemap-dump.c'), '-L/usr/lib/dovecot', '-ldovecot', '-Wl,-rpath,/usr/lib/dovecot']);
  const dump = run(bin, []).trim().split('\n');
  assert.ok(dump.length > 17000, `${dump.length} mappings dumped`);
  const changed = new Map<number, string>();
  for (const l of dump) {
    const [c, ...out] = l.split(' ').map((h) => parseInt(h, 16));
    changed.set(c, String.fromCodePoint(...out));
  }
  let wrong = 0;
  const examples: string[] = [];
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = String.fromCodePoint(c);
    const want = changed.get(c) ?? ch;
    if (casemap(ch) !== want && wrong++ < 5) examples.push(`U+${c.toString(16)}: ${JSON.stringify(casemap(ch))} want ${JSON.stringify(want)}`);
  }
  assert.equal(wrong, 0, examples.join('\n'));
});

test('casemap: titlecase then one level of decomposition, as Dovecot', () => {
  assert.equal(casemap('Straße'), 'STRAßE'); // no simple titlecase for ß
  assert.equal(casemap('café'), 'CAFE\u0301');
  assert.equal(casemap('σίσυφος'), casemap('ΣΊΣΥΦΟΣ')); // final and medial sigma alike
  assert.equal(casemap('ＡＢＣ'), 'ABC');
  assert.equal(casemap('ǆ'), 'ǅ');
  assert.equal(casemap('ḉ'), 'Ç\u0301'); // one level: not C + cedilla + acute as NFKD
  assert.equal(casemap('한'), '\u1112\u1161\u11ab');
  assert.equal(casemap('plain ascii'), 'PLAIN ASCII');
});
