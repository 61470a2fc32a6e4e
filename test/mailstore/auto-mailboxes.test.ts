/**
 * The store side of `mailbox { auto, autoexpunge }` (the IMAP behaviour is
 * compared with Dovecot in test/imap/diff/mailbox-config.test.ts): an auto
 * mailbox is listed before it exists and made on first open; autoexpunge
 * goes by save date, oldest UID first, and respects another process's lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { tempDir } from '../helpers/tmp.js';

test('auto mailbox: listed and subscribed before it exists, created and subscribed when opened', async (t) => {
  const dir = tempDir(t, 'auto-mb');
  const store = new MailStore({ mailLocation: `maildir:${dir}/Maildir`, autoMailboxes: [{ name: 'Junk', auto: 'subscribe' }, { name: 'Archive', auto: 'create' }], specialUse: { Junk: '\\Junk' } });
  await store.ensureRoot();
  assert.deepEqual((await store.listInfo()).map((f) => [f.name, f.exists, f.specialUse]), [['Junk', true, '\\Junk'], ['Archive', true, undefined], ['INBOX', true, undefined]]);
  assert.deepEqual(await store.subscriptions(), ['Junk']);
  assert.equal(existsSync(join(dir, 'Maildir', '.Junk')), false);
  await store.delete('Junk'); // not created yet: nothing to do, still listed
  await store.open('Junk');
  assert.equal(existsSync(join(dir, 'Maildir', '.Junk', 'cur')), true);
  assert.deepEqual(await store.subscriptions(), ['Junk']);
  await assert.rejects(store.open('Nope'), /does not exist/);
});

test('autoexpunge: saved before the limit → expunged, oldest first up to the first newer; a fresh lock of another process is respected', async (t) => {
  const dir = tempDir(t, 'autoexp');
  const store = new MailStore({ mailLocation: `maildir:${dir}/Maildir`, autoexpunge: [{ name: 'Trash', ms: 60_000 }] });
  await store.ensureRoot();
  await store.create('Trash');
  const f = await store.open('Trash');
  await f.sync();
  for (let i = 0; i < 3; i++) await f.append(Buffer.from(`Subject: ${i}\n\nx\n`));
  assert.equal(await store.autoexpunge(Date.now()), 0, 'nothing is old yet');
  const lock = join(dir, 'Maildir', 'sealmail.autoexpunge.lock');
  writeFileSync(lock, '1\n');
  assert.equal(await store.autoexpunge(Date.now() + 120_000), 0, 'another run holds the lock');
  assert.equal(existsSync(lock), true);
  rmSync(lock);
  assert.equal(await store.autoexpunge(Date.now() + 120_000), 3);
  assert.equal(existsSync(lock), false, 'lock released');
  assert.equal((await store.status('Trash')).messages, 0);
});
