/**
 * `sealadm password change` on an ISPmail userdb (SQLite; the kill test also
 * MariaDB and PostgreSQL) with mail-crypt:
 * the process is killed after each step (SEALMAIL_TEST_CRASH_AT) and the
 * user can still log in with exactly one of the two passwords and read all
 * mail; after a crash past the SQL commit the next login finishes the
 * change. Also: wrong old password changes nothing; the recovery code sets
 * a new password without the old one, a wrong code changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NEW, OLD, U, setup } from '../helpers/mailcrypt-sqlite-user.js';
import { requireDb } from '../helpers/databases.js';

for (const [kind, step] of [...(['sqlite', 'mysql', 'pgsql'] as const).flatMap((k) => ['staged', 'sql', 'promoted', ''].map((s) => [k, s] as const))]) {
  test(`password change (${kind} userdb) ${step ? `killed after "${step}"` : 'to completion'}: one password logs in and reads all mail`, async (t) => {
    if (!requireDb(t, kind)) return;
    const { S, works, readsAll, attrs, login } = await setup(t, kind);
    const r = S(['password', 'change', '-u', U], `${OLD}\n${NEW}\n${NEW}\n`, step ? { SEALMAIL_TEST_CRASH_AT: step } : {});
    if (step) assert.equal(r.signal, 'SIGKILL', `killed at ${step}: ${r.stderr}`);
    else { assert.equal(r.status, 0, r.stderr); assert.match(r.stdout, /Password changed for ann@example\.org \(1 mail-crypt key\(s\) re-encrypted\)/); }
    const pw = step === 'staged' ? OLD : NEW;
    const other = pw === OLD ? NEW : OLD;
    assert.ok(works(pw), `${pw === OLD ? 'old' : 'new'} password must authenticate`);
    assert.ok(!works(other), 'exactly one password authenticates');
    assert.ok(readsAll(pw), 'all mail readable with the password that logs in');
    if (step === 'sql') {
      assert.match(attrs(), /pending-privkeys/);
      const l = login(NEW);
      assert.equal(l.status, 0, l.stderr);
      assert.doesNotMatch(attrs(), /pending-privkeys/, 'the login finished the change');
      assert.ok(readsAll(NEW));
    }
    if (step === 'promoted' || step === '') assert.doesNotMatch(attrs(), /pending-privkeys/);
  });
}

test('password change: a wrong old password changes nothing', async (t) => {
  const { S, works, attrs } = await setup(t);
  const before = attrs();
  const r = S(['password', 'change', '-u', U], `wrong\n${NEW}\n${NEW}\n`);
  assert.equal(r.status, 77);
  assert.match(r.stderr, /old password is wrong; nothing changed/);
  assert.equal(attrs(), before);
  assert.ok(works(OLD));
});

test('recovery code: sets a new password without the old one; a wrong code changes nothing', async (t) => {
  const { S, works, readsAll, attrs } = await setup(t);
  const rc = S(['mailbox', 'cryptokey', 'recovery', '-u', U], `${OLD}\n`);
  assert.equal(rc.status, 0, rc.stderr);
  const code = rc.stdout.match(/^([A-Z2-9]{5}(?:-[A-Z2-9]{5}){4})$/m)?.[1];
  assert.ok(code, rc.stdout);
  assert.doesNotMatch(attrs(), new RegExp(code!), 'the code itself is never stored');
  const before = attrs();
  const bad = S(['password', 'change', '-u', U, '--recovery'], `AAAAA-AAAAA-AAAAA-AAAAA-AAAAA\n${NEW}\n${NEW}\n`);
  assert.equal(bad.status, 65, bad.stderr);
  assert.match(bad.stderr, /no recovery copy of the user key opens with this code/);
  assert.equal(attrs(), before);
  const ok = S(['password', 'change', '-u', U, '--recovery'], `${code!.toLowerCase()}\n${NEW}\n${NEW}\n`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(works(NEW) && !works(OLD));
  assert.ok(readsAll(NEW));
});

test('password change: a new password the passdb scheme cannot store (bcrypt keeps 72 bytes) is refused before anything changes', async (t) => {
  const { dir, S, works, attrs } = await setup(t);
  const sql = join(dir, 'dovecot-sql.conf.ext');
  writeFileSync(sql, readFileSync(sql, 'utf8').replace(/default_pass_scheme = \S+/, 'default_pass_scheme = BLF-CRYPT'));
  const before = attrs();
  const long = `${NEW}-${'x'.repeat(80)}`;
  const r = S(['password', 'change', '-u', U], `${OLD}\n${long}\n${long}\n`);
  assert.equal(r.status, 65, r.stderr);
  assert.match(r.stderr, /the new password is too long for the passdb scheme BLF-CRYPT \(it would keep only a prefix\); nothing changed/);
  assert.equal(attrs(), before);
  assert.ok(works(OLD) && !works(long));
  const ctl = S(['password', 'change', '-u', U], `${OLD}\0bad\u0001x\0bad\u0001x\0`);
  assert.equal(ctl.status, 0, ctl.stderr); // a control character other than NUL is storable
});
