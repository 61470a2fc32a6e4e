/**
 * STATUS from the status cache: an unchanged folder answers without a
 * directory scan (proved by planting a marker value in the cache), any
 * foreign change to new/, cur/ or the uidlist is seen at once, and a folder
 * changed within the last two seconds is never cached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { STATUS_FILE } from '../../src/mailstore/status-cache.js';
import { tempDir } from '../helpers/tmp.js';

function age(root: string): void {
  const t = new Date(Date.now() - 60_000);
  for (const p of ['new', 'cur', 'dovecot-uidlist', 'sealmail.recent']) if (existsSync(join(root, p))) utimesSync(join(root, p), t, t);
}

test('STATUS: cached when unchanged, rescanned after foreign changes, never cached when fresh', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  for (let i = 0; i < 3; i++) await inbox.append(Buffer.from(`Subject: ${i}\n\nbody\n`), { flags: i === 0 ? ['\\Seen'] : [] });
  const root = join(home, 'Maildir');
  const cache = join(root, STATUS_FILE);

  // fresh changes: counted, not cached
  assert.equal((await store.status('INBOX')).messages, 3);
  assert.equal(existsSync(cache), false, 'a folder changed < 2 s ago must not be cached');

  age(root);
  const s1 = await store.status('INBOX');
  assert.deepEqual([s1.messages, s1.unseen, s1.uidnext], [3, 2, 4]);
  assert.ok(existsSync(cache));
  // plant a marker: a hit must come from the cache, not from a scan
  const f = JSON.parse(readFileSync(cache, 'utf8'));
  f.status.messages = 4242;
  writeFileSync(cache, JSON.stringify(f));
  assert.equal((await store.status('INBOX')).messages, 4242);

  // a foreign delivery into new/ changes new/'s mtime: rescanned
  writeFileSync(join(root, 'new', '1700000000.M1P1.foreign'), 'Subject: x\n\ny\n');
  assert.equal((await store.status('INBOX')).messages, 4);
  // a foreign flag change (a client marks the new message seen)
  age(root);
  assert.equal((await store.status('INBOX')).unseen, 3);
  renameSync(join(root, 'new', '1700000000.M1P1.foreign'), join(root, 'cur', '1700000000.M1P1.foreign:2,S'));
  const s2 = await store.status('INBOX');
  assert.equal(s2.unseen, 2);
  assert.equal(s2.messages, 4);
});
