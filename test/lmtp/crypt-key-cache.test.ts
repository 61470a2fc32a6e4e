/**
 * The delivery path keeps the attribute dict it read (and the public keys it
 * parsed) while the file is unchanged (src/crypt/attributes.ts readShared):
 * after `sealadm mailbox cryptokey generate -f INBOX` the next delivery, by
 * the same LMTP process, is encrypted to the new folder key, and both
 * messages read back through IMAP (our reader, with the password).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { lmtpDeliver, markerMessage } from '../helpers/lmtp-kill.js';
import { ImapLine } from '../helpers/imap-line.js';
import { sealadmJs } from '../helpers/paths.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../helpers/mail-crypt.js';
import { parseHeader } from '../../src/crypt/container.js';

const USER = 'john@example.org';

test('after cryptokey generate -f, the next delivery by the same LMTP process uses the new folder key', async (t) => {
  const port = await freePort();
  // one LMTP process: the one whose cached dict must notice the new key
  const srv = await startSealmail(t, { passdb: CRYPT_PASSDB, extraConf: `protocols = imap lmtp\n${CRYPT_CONF}service lmtp {\n  process_min_avail = 1\n  inet_listener lmtp {\n    port = ${port}\n  }\n}\n` });
  const imap = await ImapLine.open(srv.imapPort);
  t.after(() => imap.close());
  assert.match(await imap.cmd('a', `LOGIN ${USER} pass`), /^a OK /m); // the user key pair, made at the first login
  const maildir = join(srv.home(USER), 'Maildir');
  const stored = () => ['new', 'cur'].flatMap((d) => readdirSync(join(maildir, d)).map((f) => join(maildir, d, f)));
  const keyOf = (file: string) => {
    const h = parseHeader(readFileSync(file));
    assert.equal(h.version, 2);
    return h.keyId;
  };

  assert.ok(await lmtpDeliver(port, USER, markerMessage('first', 2000)), srv.output().slice(-2000));
  const [first] = stored();
  const before = keyOf(first);

  const gen = spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, '-o', 'plugin/mail_crypt_private_password=pass', 'mailbox', 'cryptokey', 'generate', '-u', USER, '-f', 'INBOX'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(gen.status, 0, gen.stderr);
  const newId = /[0-9a-f]{64}/.exec(gen.stdout)?.[0];
  assert.ok(newId, `the new key id in: ${gen.stdout}`);
  assert.notEqual(newId, before);

  assert.ok(await lmtpDeliver(port, USER, markerMessage('second', 2000)), srv.output().slice(-2000));
  const second = stored().find((f) => f !== first)!;
  assert.equal(keyOf(second), newId, 'the second message is encrypted to the folder key generated in between');

  // both read back with the password (the old folder key stays for the first)
  await imap.cmd('s', 'SELECT INBOX');
  const bodies = await imap.cmd('f', 'FETCH 1:2 (BODY.PEEK[])');
  assert.match(bodies, /Message-ID: <first@kill\.test>/);
  assert.match(bodies, /Message-ID: <second@kill\.test>/);
});
