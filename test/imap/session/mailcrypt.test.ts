/**
 * mail-crypt through IMAP: the passdb hands the login password to the mail
 * side (ISPmail's `userdb_mail_crypt_private_password=%w`), the first login
 * generates the user key, APPENDed mail is stored encrypted and FETCH gives
 * it back byte for byte; a second login (new session) reads it again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startSealmail } from '../../helpers/sealmail-server.js';

const MSG = 'From: a@example.org\r\nSubject: SecretMarkerSubject\r\n\r\nSecretMarkerBody\r\n';

test('IMAP with mail-crypt: key made at first login, APPEND stored encrypted, FETCH decrypts', async (t) => {
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = static\n  args = password=pass userdb_mail_crypt_private_password=%w\n}',
    extraConf: `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`,
  });
  const session = async () => {
    const c = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: 'eve@example.org', pass: 'pass' }, logger: false, tls: { rejectUnauthorized: false } });
    await c.connect();
    return c;
  };
  const c1 = await session();
  await c1.append('INBOX', MSG);
  await c1.logout();
  const maildir = join(srv.home('eve@example.org'), 'Maildir');
  assert.match(readFileSync(join(maildir, 'dovecot-attributes'), 'utf8'), /crypt\/active/);
  const files = [...readdirSync(join(maildir, 'new')).map((f) => join(maildir, 'new', f)), ...readdirSync(join(maildir, 'cur')).map((f) => join(maildir, 'cur', f))];
  assert.equal(files.length, 1);
  const stored = readFileSync(files[0]);
  assert.ok(stored.subarray(0, 7).equals(Buffer.from('CRYPTED')), 'stored encrypted');
  assert.ok(!stored.includes('SecretMarker'));
  const c2 = await session();
  await c2.mailboxOpen('INBOX');
  const m = await c2.fetchOne('1', { source: true, envelope: true });
  assert.ok(m);
  assert.equal(m.source?.toString(), MSG);
  assert.equal(m.envelope?.subject, 'SecretMarkerSubject');
  await c2.logout();
  // the envelope cache exists and is sealed: no plaintext of the message in it
  const cache = readFileSync(join(maildir, 'sealmail.cache'));
  assert.ok(cache.length > 40);
  assert.ok(!cache.includes('SecretMarker'));
});
