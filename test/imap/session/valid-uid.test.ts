/**
 * first_valid_uid / last_valid_uid against the real Dovecot 2.3: a user whose
 * uid lies outside the range authenticates, but mail access is refused — IMAP
 * answers `OK Logged in, but initialization failed.` and BYE, LMTP accepts
 * the recipient and fails the DATA with `451 4.3.0 … Temporary internal
 * error` — and nothing is stored. Inside the range both servers work normally.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';

/** Send lines one by one, each after the server went quiet; the transcript after the greeting. */
async function talk(port: number, lines: string[]): Promise<string> {
  const sock = connect(port, '127.0.0.1');
  let buf = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { buf += d; });
  sock.on('error', () => undefined);
  const quiet = async () => {
    for (let last = -1, end = Date.now() + 10_000; buf.length !== last && Date.now() < end;) { last = buf.length; await new Promise((r) => setTimeout(r, 300)); }
  };
  await quiet();
  buf = buf.replace(/^[^\n]*\n/, ''); // the greeting names each server
  for (const l of lines) { sock.write(`${l}\r\n`); await quiet(); }
  sock.destroy();
  return buf.replace(/\[CAPABILITY [^\]]*\]/g, '[CAPABILITY …]').replace(/^250-[^\r]*\r\n/gm, '').replace(/\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/g, '(t)').replace(/UIDVALIDITY \d+/g, 'UIDVALIDITY n');
}

const messages = (home: string) => ['cur', 'new'].flatMap((d) => (existsSync(join(home, 'Maildir', d)) ? readdirSync(join(home, 'Maildir', d)) : []));

for (const [name, range] of [['below first_valid_uid', (uid: number) => `first_valid_uid = ${uid + 1}\n`], ['above last_valid_uid', (uid: number) => `first_valid_uid = 1\nlast_valid_uid = ${uid - 1}\n`], ['inside the range', (uid: number) => `first_valid_uid = ${uid}\nlast_valid_uid = ${uid}\n`]] as const) {
  test(`mail uid ${name}: IMAP and LMTP answer as Dovecot's`, async (t) => {
    const { uid } = mailIds();
    const conf = range(uid);
    const [dvImap, dvLmtp, smLmtp] = [await freePort(), await freePort(), await freePort()];
    const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\n${conf}service imap-login {\n  inet_listener imap {\n    port = ${dvImap}\n  }\n}\nservice lmtp {\n  inet_listener lmtp {\n    port = ${dvLmtp}\n    address = 127.0.0.1\n  }\n}\n` });
    if (!dv) return;
    const seal = await startSealmail(t, { extraConf: `${conf}protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${smLmtp}\n    address = 127.0.0.1\n  }\n}\n` });
    const user = 'u@example.org';
    const imap = ['a LOGIN u@example.org pass', 'b SELECT INBOX'];
    assert.equal(await talk(seal.imapPort, imap), await talk(dvImap, imap), 'IMAP');
    const lmtp = ['LHLO x', 'MAIL FROM:<a@example.org>', `RCPT TO:<${user}>`, 'DATA', 'Subject: x\r\n\r\nhello\r\n.', 'QUIT'];
    const ours = await talk(smLmtp, lmtp);
    assert.equal(ours.replace(/ [0-9A-Za-z+/]{22} Saved/, ' (id) Saved'), (await talk(dvLmtp, lmtp)).replace(/ [0-9A-Za-z+/]{22} Saved/, ' (id) Saved'), 'LMTP');
    assert.equal(messages(seal.home(user)).length, name === 'inside the range' ? 1 : 0, 'stored only inside the range');
  });
}
