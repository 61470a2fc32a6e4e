/**
 * `sealadm password rekey` as PostfixAdmin's mailbox_postpassword_script
 * calls it: PostfixAdmin has already written the new hash, then runs the
 * script with "username domain" as arguments and "old\0new\0" on stdin.
 * Old mail is readable with the new password afterwards; a wrong old
 * password changes no byte of the keys; a second run is a no-op; a kill
 * after staging leaves keys that the next login (or rerun) finishes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { NEW, OLD, U, setup } from '../helpers/mailcrypt-sqlite-user.js';

/** What PostfixAdmin's MailboxHandler::change_pw writes to the script: each password NUL-terminated. */
const stdin = (old: string, next: string) => `${old}\0${next}\0`;
const hook = ['password', 'rekey', U, 'example.org'];

async function hashUpdated(db: { exec(sql: string): Promise<unknown> }): Promise<void> {
  const h = await hashPassword('SHA512-CRYPT', Buffer.from(NEW), { user: U });
  await db.exec(`UPDATE virtual_users SET password = '${h}' WHERE email = '${U}';`);
}

test('PostfixAdmin hook: hash updated first, then rekey: old mail readable with the new password; a second run changes nothing', async (t) => {
  const { db, S, works, readsAll, attrs } = await setup(t);
  await hashUpdated(db);
  assert.ok(works(NEW) && !works(OLD));
  assert.ok(!readsAll(NEW), 'before the hook the key is still under the old password');
  const r = S(hook, stdin(OLD, NEW));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 mail-crypt key\(s\) re-encrypted with the new password/);
  assert.ok(readsAll(NEW), 'all mail readable with the new password');
  assert.ok(!readsAll(OLD));
  assert.doesNotMatch(attrs(), /pending-privkeys/);
  const keys = attrs();
  const again = S(hook, stdin(OLD, NEW));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /already open with the new password; nothing changed/);
  assert.equal(attrs(), keys, 'idempotent: the keys are byte-identical');
  // `-u USER` and newline-separated stdin work too
  const lines = S(['password', 'rekey', '-u', U], `${OLD}\n${NEW}\n`);
  assert.equal(lines.status, 0, lines.stderr);
  assert.equal(attrs(), keys);
});

test('PostfixAdmin hook: a wrong old password is refused and the keys stay byte-identical', async (t) => {
  const { db, S, readsAll, attrs } = await setup(t);
  await hashUpdated(db);
  const before = attrs();
  const r = S(hook, stdin('wrong', NEW));
  assert.equal(r.status, 77, r.stdout + r.stderr);
  assert.match(r.stderr, /the old password does not open the mail-crypt keys .*; nothing changed/);
  assert.ok(!(r.stdout + r.stderr).includes(NEW), 'no password echoed');
  assert.equal(attrs(), before);
  assert.ok(readsAll(OLD), 'the key still opens with the old password');
});

test('PostfixAdmin hook: a new password the passdb does not accept (hash not updated) is refused, nothing changed', async (t) => {
  const { S, attrs, works } = await setup(t);
  const before = attrs();
  const r = S(hook, stdin(OLD, NEW));
  assert.equal(r.status, 77, r.stdout + r.stderr);
  assert.match(r.stderr, /the passdb does not accept the new password/);
  assert.equal(attrs(), before);
  assert.ok(works(OLD));
});

test('PostfixAdmin hook killed after staging: the key opens with the new password; the next login or rerun finishes', async (t) => {
  const { db, S, readsAll, attrs, login } = await setup(t);
  await hashUpdated(db);
  const r = S(hook, stdin(OLD, NEW), { SEALMAIL_TEST_CRASH_AT: 'staged' });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.match(attrs(), /pending-privkeys/, 'both copies kept until the promotion');
  assert.ok(readsAll(OLD), 'the old copy still opens');
  const l = login(NEW);
  assert.equal(l.status, 0, l.stderr);
  assert.doesNotMatch(attrs(), /pending-privkeys/, 'the login with the new password finished it');
  assert.ok(readsAll(NEW));
  const again = S(hook, stdin(OLD, NEW));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /nothing changed/);
});
