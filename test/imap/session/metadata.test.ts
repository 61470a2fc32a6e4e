/**
 * METADATA beyond the differential script (test/imap/diff/mailbox-config
 * .test.ts): on a mail-crypt user the key attributes in the same dict are
 * never shown nor changed through IMAP (Dovecot's internal ones and
 * Sealmail's vendor.sealmail ones, which Dovecot 2.3 itself would expose),
 * and the login still unlocks the keys afterwards; and the dict is shared
 * with Dovecot both ways (over IMAP, one after the other): the real Dovecot reads what Sealmail set and
 * Sealmail reads what Dovecot set, on the same home.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseDict, serialiseDict } from '../../../src/crypt/attributes.js';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { lockstep } from '../../helpers/imap-lockstep.js';
import { freePort } from '../../helpers/databases.js';

const CRYPT = `imap_metadata = yes
mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`;
const MSG = 'From: a@example.org\r\nSubject: SecretMarker\r\n\r\nbody\r\n';

test('METADATA on a mail-crypt user: key attributes are neither shown nor changed, the keys still open', async (t) => {
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = static\n  args = password=pass userdb_mail_crypt_private_password=%w\n}',
    extraConf: CRYPT,
  });
  const user = 'eve@example.org';
  const dictFile = join(srv.home(user), 'Maildir', 'dovecot-attributes');
  await lockstep(srv.imapPort, [`a1 APPEND INBOX {${MSG.length}+}\r\n${MSG}`, 'a2 CREATE Work'], user);
  // a Sealmail-only key copy (as `sealadm` recovery writes) under the server prefix
  const before = parseDict(readFileSync(dictFile, 'utf8'), dictFile);
  const activeKey = [...before.keys()].find((k) => k.endsWith('/server/vendor/vendor.dovecot/pvt/crypt/active'))!;
  assert.ok(activeKey, [...before.keys()].join('\n'));
  const inboxGuid = activeKey.split('/')[1];
  const userId = before.get(activeKey)!;
  before.set(`priv/${inboxGuid}/vendor/vendor.dovecot/pvt/server/vendor/vendor.sealmail/crypt/recovery-privkeys/${userId}`, 'RECOVERY-SECRET');
  writeFileSync(dictFile, serialiseDict(before));
  const folderKey = [...before.keys()].find((k) => /^priv\/[0-9a-f]{32}\/vendor\/vendor\.dovecot\/pvt\/crypt\/privkeys\//.test(k))!;
  assert.ok(folderKey, 'the INBOX folder key exists after APPEND');
  const folderKeyEntry = `/private/${folderKey.split('/').slice(2).join('/')}`;

  const hidden = [
    `/shared/vendor/vendor.dovecot/pvt/crypt/active`,
    `/shared/vendor/vendor.dovecot/pvt/crypt/pubkeys/${userId}`,
    `/private/vendor/vendor.dovecot/pvt/crypt/privkeys/${userId}`,
    `/private/vendor/vendor.sealmail/crypt/recovery-privkeys/${userId}`,
  ];
  const out = await lockstep(srv.imapPort, [
    'b1 GETMETADATA (DEPTH infinity) "" (/private /shared)',
    'b2 GETMETADATA (DEPTH infinity) INBOX (/private /shared)',
    `b3 GETMETADATA "" (${hidden.join(' ')})`,
    `b4 GETMETADATA INBOX (${folderKeyEntry})`,
    ...hidden.map((e, i) => `c${i} SETMETADATA "" (${e} "overwritten")`),
    ...hidden.map((e, i) => `d${i} SETMETADATA "" (${e} NIL)`),
    `e1 SETMETADATA INBOX (${folderKeyEntry} "overwritten")`,
    `e2 SETMETADATA INBOX (${folderKeyEntry} NIL)`,
    'e3 SETMETADATA INBOX (/private/vendor/vendor.sealmail/x "y")',
    'f1 SETMETADATA INBOX (/private/note "visible")',
    'f2 GETMETADATA (DEPTH infinity) INBOX /private',
    'f3 SELECT INBOX',
    'f4 FETCH 1 BODY.PEEK[]',
  ], user);
  assert.doesNotMatch(out, /RECOVERY-SECRET/);
  assert.doesNotMatch(out, /\* METADATA [^\r\n]*crypt[^\r\n]*\{/, 'no key attribute has a value in a reply');
  assert.match(out, /^b3 OK/m);
  assert.match(out, new RegExp(`\\* METADATA "" \\(${hidden.map((e) => `${e.replace(/[./]/g, '\\$&')} NIL`).join(' ')}\\)`));
  for (let i = 0; i < hidden.length; i++) {
    assert.match(out, new RegExp(`^c${i} NO \\[CANNOT\\] Internal mailbox attributes cannot be accessed`, 'm'));
    assert.match(out, new RegExp(`^d${i} NO \\[CANNOT\\] Internal mailbox attributes cannot be accessed`, 'm'));
  }
  assert.match(out, /^e1 NO \[CANNOT\] Internal mailbox attributes cannot be accessed/m);
  assert.match(out, /^e2 NO \[CANNOT\] Internal mailbox attributes cannot be accessed/m);
  assert.match(out, /^e3 NO \[CANNOT\] Internal mailbox attributes cannot be accessed/m);
  assert.match(out, /\* METADATA INBOX \(\/private\/note \{7\}\r\nvisible\)\r\nf2 OK/);
  assert.ok(out.includes(MSG), 'the message still decrypts in a new session');
  // every key attribute is byte for byte what it was; only the client's entry was added
  const after = parseDict(readFileSync(dictFile, 'utf8'), dictFile);
  for (const [k, v] of before) assert.equal(after.get(k), v, k);
  assert.deepEqual([...after.keys()].filter((k) => !before.has(k)), [`priv/${inboxGuid}/note`]);
});

test('METADATA dict shared with Dovecot: each server reads what the other wrote', async (t) => {
  const conf = 'imap_metadata = yes\nmail_attribute_dict = file:%h/dovecot-attributes\n';
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${conf}` });
  if (!dv) return;
  const srv = await startSealmail(t, { extraConf: conf, rewriteConf: (text, dir) => text.replace(`${dir}/home/%u`, `${dv.dir}/home/%u`) });
  const user = 'bob@example.org';
  const ours = await lockstep(srv.imapPort, [
    'a1 CREATE Work',
    'a2 SETMETADATA "" (/private/comment "set by sealmail" /shared/motd "hello")',
    'a3 SETMETADATA Work (/private/color "blue" /shared/owner "bob")',
    'a4 SETMETADATA INBOX (/private/old "to delete")',
    // beyond imap_max_line_length, as Dovecot accepts
    `a5 SETMETADATA INBOX (/private/big {200000+}\r\n${'x'.repeat(200_000)})`,
  ], user);
  assert.equal((ours.match(/ OK Setmetadata completed/g) ?? []).length, 4, ours.slice(-500));
  const theirs = await lockstep(port, ['b1 GETMETADATA "" (/private/comment /shared/motd)', 'b2 GETMETADATA Work (/private/color /shared/owner)',
    'b3 SETMETADATA Work (/private/color "red")', 'b4 SETMETADATA "" (/shared/from-dovecot "dv")', 'b5 SETMETADATA INBOX (/private/old NIL)', 'b6 GETMETADATA (MAXSIZE 10) INBOX /private/big'], user);
  assert.match(theirs, /b6 OK \[METADATA LONGENTRIES 200000\] Getmetadata completed/);
  assert.match(theirs, /\* METADATA "" \(\/private\/comment \{15\}\r\nset by sealmail \/shared\/motd \{5\}\r\nhello\)\r\nb1 OK/);
  assert.match(theirs, /\* METADATA Work \(\/private\/color \{4\}\r\nblue \/shared\/owner \{3\}\r\nbob\)\r\nb2 OK/);
  assert.match(theirs, /b5 OK Setmetadata completed/);
  const back = await lockstep(srv.imapPort, ['c1 GETMETADATA Work /private/color', 'c2 GETMETADATA "" /shared/from-dovecot', 'c3 GETMETADATA INBOX /private/old', 'c4 GETMETADATA (MAXSIZE 10) INBOX /private/big'], user);
  assert.match(back, /c4 OK \[METADATA LONGENTRIES 200000\] Getmetadata completed/);
  assert.match(back, /\* METADATA Work \(\/private\/color \{3\}\r\nred\)\r\nc1 OK/);
  assert.match(back, /\* METADATA "" \(\/shared\/from-dovecot \{2\}\r\ndv\)\r\nc2 OK/);
  assert.match(back, /\* METADATA INBOX \(\/private\/old NIL\)\r\nc3 OK/);
});

test('a SETMETADATA value over 1 MiB ends the connection (Sealmail\'s bound; Dovecot streams any size) and writes nothing', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'imap_metadata = yes\nmail_attribute_dict = file:%h/dovecot-attributes\n' });
  const s = connect(srv.imapPort, '127.0.0.1');
  let out = '';
  s.on('data', (d: Buffer) => { out += d.toString('latin1'); });
  const until = async (re: RegExp) => { for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50)); assert.match(out, re); };
  await until(/^\* OK/m);
  s.write('L0 LOGIN bob pass\r\n');
  await until(/^L0 OK/m);
  s.write(`a1 SETMETADATA INBOX (/private/huge {${2 * 1024 * 1024}+}\r\n`);
  s.write(Buffer.alloc(2 * 1024 * 1024, 0x78));
  await until(/^\* BYE Literal size too large\r\n/m);
  s.destroy();
  assert.ok(!existsSync(join(srv.home('bob'), 'dovecot-attributes')), 'nothing stored');
});
