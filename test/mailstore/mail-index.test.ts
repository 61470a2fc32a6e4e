/**
 * Sealmail's own index: sealed with the IndexCipher (no plaintext header
 * data on disk), crash-safe, rebuildable, MODSEQ above Dovecot's
 * HIGHESTMODSEQ on take-over and never decreasing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { IndexCipher } from '../../src/crypt/codec.js';
import { MailStore } from '../../src/mailstore/store.js';
import { MailIndex, INDEX_FILE } from '../../src/mailstore/mail-index.js';
import { tempDir } from '../helpers/tmp.js';
import { maildirFixtures, materialiseCase } from './maildir-fixture.js';

const key = randomBytes(32);
const testCipher: IndexCipher = {
  seal(p) { const iv = randomBytes(12); const c = createCipheriv('aes-256-gcm', key, iv); const b = Buffer.concat([c.update(p), c.final()]); return Buffer.concat([iv, c.getAuthTag(), b]); },
  open(s) { const d = createDecipheriv('aes-256-gcm', key, s.subarray(0, 12)); d.setAuthTag(s.subarray(12, 28)); return Buffer.concat([d.update(s.subarray(28)), d.final()]); },
};

test('index: modseq continues above Dovecot, sealed on disk, never goes down, rebuilt when damaged', async (t) => {
  const home = materialiseCase('maildirpp-alice', tempDir(t));
  const dir = join(home, 'Maildir');
  copyFileSync(join(maildirFixtures, 'index-logs', 'alice-INBOX-highestmodseq19.dovecot.index.log'), join(dir, 'dovecot.index.log'));
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, cipher: testCipher });
  const f = await store.open('INBOX');
  await f.sync();
  const { index, rebuilt } = await MailIndex.open(dir, testCipher);
  assert.equal(rebuilt, true);
  const r1 = await index.reconcile(f);
  assert.deepEqual(r1.changed, [1, 3, 4, 6, 7]);
  assert.equal(index.highestModseq, 21n, 'Dovecot had 19: ours starts at 20 and the first reconcile is 21');
  index.setCache(1, 'envelope', '("Subject secret-marker")');
  await index.save();
  const disk = readFileSync(join(dir, INDEX_FILE));
  assert.ok(!disk.includes('secret-marker') && !disk.includes('1795394566.M408161P502'), 'nothing in plaintext');

  await f.setFlags(f.message(4)!, ['\\Seen'], []);
  await f.sync();
  const again = (await MailIndex.open(dir, testCipher)).index;
  assert.equal(again.records.get(1)?.cache.envelope, '("Subject secret-marker")');
  const r2 = await again.reconcile(f);
  assert.deepEqual(r2.changed, [4]);
  assert.equal(again.records.get(4)?.modseq, '22');
  assert.equal(again.records.get(1)?.modseq, '21');

  // damaged index: rebuilt, modseq still above Dovecot's, and (being lost) restarts from there
  writeFileSync(join(dir, INDEX_FILE), 'SMIX1\ngarbage');
  const lost = await MailIndex.open(dir, testCipher);
  assert.equal(lost.rebuilt, true);
  assert.ok(lost.index.highestModseq >= 20n);
  // a leftover temp file from a crash is ignored
  writeFileSync(join(dir, `${INDEX_FILE}.tmp.1`), 'half');
  assert.equal((await MailIndex.open(dir, testCipher)).rebuilt, true);
  // no Dovecot log and no index of ours: seeded from the clock, above any earlier counter
  const bare = tempDir(t);
  const t0 = BigInt(Date.now());
  assert.ok((await MailIndex.open(bare, testCipher)).index.highestModseq >= t0);
});
