/**
 * mail-crypt against the keys and mail the real Dovecot 2.3.19 wrote
 * (test/fixtures/dovecot-mailcrypt): every message decrypts byte-identical
 * with the user's password through the store's codec (v2 and the v1
 * vector), Sealmail's own writes read back, and bad input — wrong password,
 * tampered or truncated file, corrupt attribute dict, unknown curve, missing
 * folder key — gives a clear error naming user, mailbox and UID, while the
 * other messages stay readable and no key file changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../helpers/config-text.js';
import { MailStore } from '../../src/mailstore/store.js';
import { MailStoreError } from '../../src/mailstore/errors.js';
import { unlockUserCrypt, deliveryCrypt } from '../../src/crypt/user-crypt.js';
import { CryptError } from '../../src/crypt/keys.js';
import { tempDir } from '../helpers/tmp.js';
import { cryptUser, manifest, materialiseMailcrypt, plaintext } from './mailcrypt-fixture.js';

const CONF = `mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = secp521r1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`;

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function open(t: Parameters<typeof tempDir>[0], name: string, password?: string) {
  const home = materialiseMailcrypt(name, tempDir(t));
  const config = await parseConfigText(CONF);
  const bare = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  const cu = cryptUser(bare, manifest.cases[name].user, password ? [['mail_crypt_private_password', password]] : []);
  const crypt = await unlockUserCrypt(config, cu);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: crypt.codec, cipher: crypt.cipher });
  return { home, store, crypt, config, cu };
}

// the fixtures use the IMAP separator "/", Sealmail's Maildir++ names "."
const boxName = (m: string) => m.replace(/\//g, '.');

async function readUid(store: MailStore, mailbox: string, uid: number): Promise<Buffer> {
  const f = await store.open(boxName(mailbox));
  await f.sync();
  const m = f.message(uid);
  assert.ok(m, `${mailbox} UID ${uid} exists`);
  return readAll(f.read(m));
}

for (const [name, c] of Object.entries(manifest.cases)) {
  test(`${name}: every Dovecot-written message decrypts byte-identical`, async (t) => {
    const { store } = await open(t, name, c.password_current);
    for (const m of c.messages) {
      if (name === 'alice-secp521r1' && m.format === 'v1') {
        // Dovecot cannot read its own v1 file with folder keys (spec §4.2); we can
        assert.ok((await readUid(store, m.mailbox, m.uid)).equals(plaintext(m.plaintext)), `${m.mailbox} UID ${m.uid} (v1)`);
        continue;
      }
      assert.ok((await readUid(store, m.mailbox, m.uid)).equals(plaintext(m.plaintext)), `${m.mailbox} UID ${m.uid}`);
    }
  });
}

test('wrong password: clean CryptError naming the user, no key file touched', async (t) => {
  const home = materialiseMailcrypt('bob-prime256v1', tempDir(t));
  const attrs = join(home, 'Maildir', 'dovecot-attributes');
  const before = readFileSync(attrs);
  const mtime = statSync(attrs).mtimeMs;
  const config = await parseConfigText(CONF);
  const bare = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await assert.rejects(unlockUserCrypt(config, cryptUser(bare, 'bob@example.org', [['mail_crypt_private_password', 'bobPässwörd-256']])),
    (e: unknown) => e instanceof CryptError && /user bob@example\.org: cannot open the user key .*wrong password/.test(e.message));
  assert.ok(readFileSync(attrs).equals(before));
  assert.equal(statSync(attrs).mtimeMs, mtime);
});

test('tampered and truncated files: errors name user, mailbox, UID; the others still read', async (t) => {
  const { store, home } = await open(t, 'alice-secp521r1', 'Alice-New-Pa55');
  const inbox = await store.open('INBOX');
  await inbox.sync();
  const m1 = inbox.message(1)!;
  const m4 = inbox.message(4)!;
  const p1 = join(home, 'Maildir', m1.sub, m1.file);
  const raw = readFileSync(p1);
  raw[raw.length - 40] ^= 1;
  writeFileSync(p1, raw);
  const p4 = join(home, 'Maildir', m4.sub, m4.file);
  writeFileSync(p4, readFileSync(p4).subarray(0, 400));
  await assert.rejects(readAll(inbox.read(m1)), (e: unknown) => e instanceof MailStoreError && e.code === 'CRYPT'
    && /alice@example\.org/.test(e.message) && /GCM tag mismatch/.test(e.message) && /mailbox INBOX, UID 1/.test(e.message));
  await assert.rejects(readAll(inbox.read(m4)), (e: unknown) => e instanceof MailStoreError && /truncated/.test(e.message) && /UID 4/.test(e.message));
  assert.ok((await readAll(inbox.read(inbox.message(2)!))).equals(plaintext(manifest.cases['alice-secp521r1'].messages[1].plaintext)));
});

test('a tampered message of > 1 MiB never ends silently short', async (t) => {
  const { store, home } = await open(t, 'bob-prime256v1', 'bob-Neu-Päss-2');
  const inbox = await store.open('INBOX');
  await inbox.sync();
  const m5 = inbox.message(5)!;
  const p5 = join(home, 'Maildir', m5.sub, m5.file);
  const raw = readFileSync(p5);
  raw[raw.length - 100] ^= 0x80;
  writeFileSync(p5, raw);
  let got = 0;
  await assert.rejects((async () => { for await (const c of inbox.read(m5)) got += c.length; })(), /GCM tag mismatch/);
  assert.ok(got < 1048599, 'the last chunk is held back until the tag checks');
});

test('corrupt attribute dict, unknown curve, missing folder key: clear errors', async (t) => {
  const config = await parseConfigText(CONF);
  // corrupt dict: a key without a value
  {
    const home = materialiseMailcrypt('bob-prime256v1', tempDir(t));
    const attrs = join(home, 'Maildir', 'dovecot-attributes');
    writeFileSync(attrs, readFileSync(attrs, 'utf8') + 'dangling/key\n');
    const bare = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    await assert.rejects(unlockUserCrypt(config, cryptUser(bare, 'bob@example.org', [['mail_crypt_private_password', 'bob-Neu-Päss-2']])), /dovecot-attributes: corrupt attribute dict/);
  }
  // a key string for a curve we don't know
  {
    const home = materialiseMailcrypt('bob-prime256v1', tempDir(t));
    const attrs = join(home, 'Maildir', 'dovecot-attributes');
    writeFileSync(attrs, readFileSync(attrs, 'utf8').replaceAll('2:1.2.840.10045.3.1.7:', '2:1.3.132.0.10:'));
    const bare = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    await assert.rejects(unlockUserCrypt(config, cryptUser(bare, 'bob@example.org', [['mail_crypt_private_password', 'bob-Neu-Päss-2']])), /unknown curve \(1\.3\.132\.0\.10\)/);
  }
  // the INBOX folder key removed: INBOX mail can't be read, Archive/Projects still can
  {
    const home = materialiseMailcrypt('bob-prime256v1', tempDir(t));
    const attrs = join(home, 'Maildir', 'dovecot-attributes');
    const inboxGuid = readFileSync(join(home, 'Maildir', 'dovecot-uidlist'), 'utf8').match(/ G([0-9a-f]{32})/)![1];
    const lines = readFileSync(attrs, 'utf8').split('\n');
    const out: string[] = [];
    for (let i = 0; i + 1 < lines.length; i += 2) if (!lines[i].startsWith(`priv/${inboxGuid}/vendor/vendor.dovecot/pvt/crypt/privkeys/`)) out.push(lines[i], lines[i + 1]);
    writeFileSync(attrs, out.join('\n') + '\n');
    const bare = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
    const crypt = await unlockUserCrypt(config, cryptUser(bare, 'bob@example.org', [['mail_crypt_private_password', 'bob-Neu-Päss-2']]));
    const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: crypt.codec, cipher: crypt.cipher });
    await assert.rejects(readUid(store, 'INBOX', 1), /user bob@example\.org: Private key not available: no key .* \(missing folder key\) \(mailbox INBOX, UID 1/);
    const pj = manifest.cases['bob-prime256v1'].messages.find((m) => m.mailbox === 'Archive/Projects')!;
    assert.ok((await readUid(store, pj.mailbox, pj.uid)).equals(plaintext(pj.plaintext)));
  }
});

test('Sealmail writes v2 files that read back; delivery needs no password; a new folder gets its key', async (t) => {
  const { store, home, config, cu } = await open(t, 'alice-secp521r1', 'Alice-New-Pa55');
  const msg = Buffer.from('From: a@example.org\nSubject: written by sealmail\n\n' + 'body line\n'.repeat(5000));
  // offline delivery: public keys only
  const dcrypt = await deliveryCrypt(config, { ...cu, fields: [] });
  const dstore = new MailStore({ mailLocation: 'maildir:~/Maildir', home, codec: dcrypt.codec, cipher: dcrypt.cipher });
  await dstore.create('Fresh');
  const fresh = await dstore.open('Fresh');
  const uid = await fresh.append(msg);
  const file = (await fresh.sync(), fresh.message(uid)!);
  const stored = readFileSync(join(fresh.dir, file.sub, file.file));
  assert.ok(stored.subarray(0, 9).equals(Buffer.from('435259505445440307', 'hex')), 'stored encrypted');
  const lfs = msg.toString().split("\n").length - 1;
  assert.match(file.file, new RegExp(`,S=${msg.length},W=${msg.length + lfs}`), 'S=/W= are plaintext sizes, as Dovecot');
  await assert.rejects(readAll(fresh.read(file)), /Password not available|Private key not available/);
  // the user logs in and reads it
  const f2 = await store.open('Fresh');
  await f2.sync();
  assert.ok((await readAll(f2.read(f2.message(uid)!))).equals(msg));
  assert.match(readFileSync(join(home, 'Maildir', 'dovecot-attributes'), 'utf8'), /crypt\/active/);
});
