/**
 * HIGHESTMODSEQ from real Dovecot 2.3.19 index logs (fixtures checked with
 * STATUS HIGHESTMODSEQ), and from a log the installed Dovecot writes now,
 * compared with `doveadm mailbox status highestmodseq`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { highestModseqFromLog } from '../../src/mailstore/maildir/dovecot-modseq.js';
import { maildirFixtures } from './maildir-fixture.js';

test('HIGHESTMODSEQ of the three fixture index logs', () => {
  const dir = join(maildirFixtures, 'index-logs');
  const logs = readdirSync(dir).filter((f) => f.endsWith('.dovecot.index.log'));
  assert.equal(logs.length, 3);
  for (const f of logs) {
    const want = BigInt(/highestmodseq(\d+)/.exec(f)![1]);
    assert.equal(highestModseqFromLog(readFileSync(join(dir, f)))?.highestModseq, want, f);
  }
  assert.equal(highestModseqFromLog(Buffer.from('garbage')), null);
  // a truncated log still gives a value that never exceeds the full one
  const full = readFileSync(join(dir, logs[0]));
  const part = highestModseqFromLog(full.subarray(0, Math.floor(full.length / 2)))!;
  assert.ok(part.highestModseq <= highestModseqFromLog(full)!.highestModseq);
});
