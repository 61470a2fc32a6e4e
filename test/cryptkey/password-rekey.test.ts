/**
 * `sealadm password rekey` as PostfixAdmin's mailbox_postpassword_script
 * calls it: PostfixAdmin has already written the new hash, then runs the
 * script with "username domain" as arguments and "old\0new\0" on stdin.
 * Old mail is readable with the new password afterwards; a wrong old
 * password changes no byte of the keys; a second run is a no-op; a kill
 * at every step (after staging, after the promotion) leaves keys that the
 * next login (or rerun) finishes. On SQLite, MariaDB and PostgreSQL user
 * databases (the hook reads the new hash through the passdb); the wrong old
 * password, which never reaches the database, on SQLite only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { NEW, OLD, U, setup } from '../helpers/mailcrypt-sqlite-user.js';
import { requireDb, type DbKind } from '../helpers/databases.js';

/** What PostfixAdmin's MailboxHandler::change_pw writes to the script: each password NUL-terminated. */
const stdin = (old: string, next: string) => `${old}\0${next}\0`;
const hook = ['password', 'rekey', U, 'example.org'];

async function hashUpdated(db: { exec(sql: string): Promise<unknown> }): Promise<void> {
  const h = await hashPassword('SHA512-CRYPT', Buffer.from(NEW), { user: U });
  await db.exec(`UPDATE virtual_users SET password = '${h}' WHERE email = '${U}';`);
}

const KINDS: DbKind[] = ['sqlite', 'mysql', 'pgsql'];

for (const kind of KINDS) {
  test(`PostfixAdmin hook (${kind} userdb): refused before the hash is updated; after it, old mail readable with the new password; a second run changes nothing`, async (t) => {
    if (!requireDb(t, kind)) return;
    const { db, S, works, readsAll, attrs } = await setup(t, kind);
    // run before PostfixAdmin wrote the hash: the passdb does not accept the new password, nothing changes
    const unchanged = attrs();
    const early = S(hook, stdin(OLD, NEW));
    assert.equal(early.status, 77, early.stdout + early.stderr);
    assert.match(early.stderr, /the passdb does not accept the new password/);
    assert.equal(attrs(), unchanged);
    assert.ok(works(OLD));
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
}

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

for (const [kind, step] of KINDS.flatMap((k) => (['staged', 'promoted'] as const).map((st) => [k, st] as const))) {
  test(`PostfixAdmin hook (${kind} userdb) killed after "${step}": the key opens with the new password; the next login or rerun finishes`, async (t) => {
    if (!requireDb(t, kind)) return;
    const { db, S, readsAll, attrs, login } = await setup(t, kind);
    await hashUpdated(db);
    const r = S(hook, stdin(OLD, NEW), { SEALMAIL_TEST_CRASH_AT: step });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    if (step === 'staged') {
      assert.match(attrs(), /pending-privkeys/, 'both copies kept until the promotion');
      assert.ok(readsAll(OLD), 'the old copy still opens');
      const l = login(NEW);
      assert.equal(l.status, 0, l.stderr);
    }
    assert.doesNotMatch(attrs(), /pending-privkeys/, step === 'staged' ? 'the login with the new password finished it' : 'promoted before the kill');
    assert.ok(readsAll(NEW));
    assert.ok(!readsAll(OLD));
    const again = S(hook, stdin(OLD, NEW));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /nothing changed/);
  });
}
