/**
 * mail-crypt both ways with the real Dovecot 2.3 on one Maildir, for P-521
 * and P-256: keys and mail made by doveadm open in Sealmail; mail Sealmail
 * saves (public keys only, new folders get their key) reads back
 * byte-identical through `doveadm fetch text`; a user key Sealmail
 * generates opens in Dovecot; a password changed with `doveadm mailbox
 * cryptokey password` works in Sealmail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';

const MSG = (n: string) => `From: Sender <s@example.org>\nTo: u@example.org\nSubject: interop ${n} \u00e9\nMessage-ID: <${n}@example.org>\n\nBody of ${n}.\n${'line of text\n'.repeat(200)}`;

for (const curve of ['secp521r1', 'prime256v1']) {
  test(`mail-crypt interop with Dovecot (${curve})`, async (t) => {
    const dv = setupDovecot(t, {
      start: true,
      extraConf: `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = ${curve}
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`,
    });
    if (!dv) return;
    const PW = 'Pässwort-1';
    const pwOpt = (p: string) => ['-o', `plugin/mail_crypt_private_password=${p}`];
    const D = (args: string[], input?: string) => dv.doveadm(args, input);
    type Run = { stdout: string; stderr: string; status: number | null };
    const S = (args: string[], input?: string): Run => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { input, encoding: 'utf8', timeout: 60_000 });
    const ok = (r: { status: number | null; stderr: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stderr}`);

    // 1. Dovecot makes the keys and the first message; Sealmail reads it
    const U = 'dove@example.org';
    ok(D([...pwOpt(PW), 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'doveadm cryptokey generate');
    ok(D(['save', '-u', U], MSG('d1')), 'doveadm save');
    let r = S([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', U, 'text', 'uid', '1']);
    ok(r, 'sealadm fetch');
    assert.equal(r.stdout, `text=${MSG('d1')}\n`);
    // without the password: a clear error, no plaintext
    r = S(['fetch', '-u', U, 'text', 'uid', '1']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /dove@example\.org.*(Password not available|Private key not available)/);
    assert.doesNotMatch(r.stdout, /Body of d1/);

    // 2. Sealmail saves (public keys only) into INBOX and into a new folder; Dovecot reads both
    ok(S(['save', '-u', U], MSG('s1')), 'sealadm save INBOX');
    ok(S(['mailbox', 'create', '-u', U, 'Projects']), 'sealadm mailbox create');
    ok(S(['save', '-u', U, '-m', 'Projects'], MSG('s2')), 'sealadm save Projects');
    r = D([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', U, 'text', 'mailbox', 'INBOX', 'uid', '2']);
    ok(r, 'doveadm fetch INBOX 2');
    assert.equal(r.stdout, `text=${MSG('s1')}\n`);
    r = D([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', U, 'text size.physical size.virtual', 'mailbox', 'Projects']);
    ok(r, 'doveadm fetch Projects');
    assert.equal(r.stdout, `text=${MSG('s2')} size.physical=${Buffer.byteLength(MSG('s2'))} size.virtual=${Buffer.byteLength(MSG('s2')) + MSG('s2').split('\n').length - 1}\n`);
    // the stored file really is encrypted
    const inboxNew = join(dv.home(U), 'Maildir');
    assert.doesNotMatch(spawnSync('grep', ['-rl', 'Body of s1', inboxNew], { encoding: 'utf8' }).stdout, /./);

    // 3. a user whose keys Sealmail generates (first save with the password): Dovecot opens them
    const V = 'seal@example.org';
    ok(S([...pwOpt(PW), 'save', '-u', V], MSG('v1')), 'sealadm save generating keys');
    const attrs = readFileSync(join(dv.home(V), 'Maildir', 'dovecot-attributes'), 'utf8');
    assert.match(attrs, new RegExp(`crypt/active\\n[0-9a-f]{64}\\n`));
    r = D([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', V, 'text', 'all']);
    ok(r, 'doveadm fetch of a Sealmail-keyed user');
    assert.equal(r.stdout, `text=${MSG('v1')}\n`);
    r = D(['-f', 'flow', 'mailbox', 'cryptokey', 'list', '-u', V, '-U']);
    ok(r, 'doveadm cryptokey list');
    assert.match(r.stdout, /[0-9a-f]{64}/);
    // and Dovecot writes into Sealmail's folder key
    ok(D(['save', '-u', V], MSG('v2')), 'doveadm save for the Sealmail-keyed user');
    r = S([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', V, 'text', 'uid', '2']);
    ok(r, 'sealadm fetch v2');
    assert.equal(r.stdout, `text=${MSG('v2')}\n`);

    // 4. a password changed by doveadm works in Sealmail; the old one no longer does
    r = D(['mailbox', 'cryptokey', 'password', '-u', U, '-o', PW, '-n', 'Neu-Pw-2']);
    ok(r, 'doveadm cryptokey password');
    r = S([...pwOpt('Neu-Pw-2'), '-f', 'flow', 'fetch', '-u', U, 'text', 'mailbox', 'Projects']);
    ok(r, 'sealadm fetch with the new password');
    assert.equal(r.stdout, `text=${MSG('s2')}\n`);
    r = S([...pwOpt(PW), '-f', 'flow', 'fetch', '-u', U, 'text', 'mailbox', 'Projects']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /wrong password/);
  });
}
