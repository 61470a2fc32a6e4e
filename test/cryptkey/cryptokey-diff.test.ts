/**
 * `sealadm mailbox cryptokey generate|list|password` against the real
 * doveadm: the same command sequence on two users of one private Dovecot
 * (one handled by doveadm, one by sealadm) prints the same output, info
 * lines and exit codes, key ids aside; then each tool's keys work in the
 * other (mail saved by Dovecot into sealadm-made keys and vice versa, and a
 * password changed by sealadm opens in Dovecot).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';

const ID = /[0-9a-f]{64}/g;
// which OpenSSL error a wrong password gives depends on the random salt: any of BN_mpi2bn's
const norm = (s: string, user: string) => s.replace(ID, '<ID>').replaceAll(`(${user})`, '(USER)')
  .replace(/error:0180006A:bignum routines::invalid length|error:01800068:bignum routines::encoding error|Key id mismatch after load/g, '<BN-ERROR>');

test('cryptokey generate/list/password: sealadm = doveadm, and the keys interoperate', (t) => {
  const dv = setupDovecot(t, {
    start: true,
    extraConf: `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`,
  });
  if (!dv) return;
  const P = ['-o', 'plugin/mail_crypt_private_password=pw1'];
  const steps: { args: (u: string) => string[]; input?: string }[] = [
    { args: (u) => [...P, 'mailbox', 'cryptokey', 'generate', '-u', u, '-U'] },
    { args: (u) => [...P, 'mailbox', 'cryptokey', 'generate', '-u', u, '-U'] },
    { args: (u) => [...P, 'mailbox', 'cryptokey', 'generate', '-u', u, 'INBOX'] },
    { args: (u) => [...P, 'mailbox', 'cryptokey', 'generate', '-u', u, '-R'] },
    { args: (u) => [...P, 'mailbox', 'cryptokey', 'generate', '-u', u, '-f', 'INBOX'] },
    { args: (u) => ['mailbox', 'cryptokey', 'list', '-u', u, '-U'] },
    { args: (u) => ['-f', 'tab', 'mailbox', 'cryptokey', 'list', '-u', u, 'INBOX'] },
    { args: (u) => ['mailbox', 'cryptokey', 'list', '-u', u] },
    { args: (u) => ['mailbox', 'cryptokey', 'password', '-u', u, '-o', 'bad', '-n', 'x'] },
    { args: (u) => ['mailbox', 'cryptokey', 'password', '-u', u, '-n', 'x'] },
    { args: (u) => ['mailbox', 'cryptokey', 'password', '-u', u, '-o', 'pw1', '-n', 'pw2'] },
    { args: (u) => ['mailbox', 'cryptokey', 'password', '-u', u, '-O', '-N'], input: 'pw2\npw3\npw3\n' },
  ];
  for (const s of steps) {
    const d = dv.doveadm(s.args('dove'), s.input);
    const m: { stdout: string; stderr: string; status: number | null } = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...s.args('seal')], { input: s.input, encoding: 'utf8', timeout: 60_000 });
    const what = s.args('USER').join(' ');
    // the listing order of several keys is Dovecot's hash-table order: compare as sets of lines
    const lines = (x: string, u: string) => norm(x, u).split('\n').sort().join('\n');
    assert.equal(lines(m.stdout, 'seal'), lines(d.stdout, 'dove'), `stdout: ${what}\nsealadm stderr: ${m.stderr}`);
    assert.equal(m.status, d.status, `exit code: ${what}\n${m.stderr}`);
    assert.equal(norm(m.stderr, 'seal'), norm(d.stderr, 'dove'), `stderr: ${what}`);
  }
  // Dovecot saves into sealadm's keys (password now pw3), sealadm reads; and the reverse
  const msg = 'Subject: cross\n\nkeys made by the other tool\n';
  assert.equal(dv.doveadm(['save', '-u', 'seal'], msg).status, 0);
  const r1 = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, '-o', 'plugin/mail_crypt_private_password=pw3', '-f', 'flow', 'fetch', '-u', 'seal', 'text', 'all'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r1.stdout, `text=${msg}\n`, r1.stderr);
  const r2 = dv.doveadm(['-o', 'plugin/mail_crypt_private_password=pw3', '-f', 'flow', 'fetch', '-u', 'seal', 'text', 'all']);
  assert.equal(r2.stdout, `text=${msg}\n`, `Dovecot opens keys generated and re-passworded by sealadm: ${r2.stderr}`);
  assert.equal(spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, 'save', '-u', 'dove'], { input: msg, encoding: 'utf8', timeout: 120_000 }).status, 0);
  const r3 = dv.doveadm(['-o', 'plugin/mail_crypt_private_password=pw3', '-f', 'flow', 'fetch', '-u', 'dove', 'text', 'all']);
  assert.equal(r3.stdout, `text=${msg}\n`, r3.stderr);
});
