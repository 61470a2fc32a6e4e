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

/**
 * Send lines one by one, each after the reply that ends the previous one (an
 * IMAP line's tagged status or a BYE, an SMTP/LMTP final `NNN ` line) or the
 * server closing: no quiet-period guess. The transcript after the greeting.
 */
async function talk(port: number, lines: string[]): Promise<string> {
  const sock = connect(port, '127.0.0.1');
  let buf = '';
  let closed = false;
  let wake = (): void => undefined;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { buf += d; wake(); });
  sock.on('close', () => { closed = true; wake(); });
  sock.on('error', () => undefined);
  const until = async (done: (text: string) => boolean, from: number) => {
    const end = Date.now() + 20_000;
    while (!done(buf.slice(from)) && !closed) {
      if (Date.now() > end) throw new Error(`no reply on port ${port}; got ${JSON.stringify(buf)}`);
      await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
    }
  };
  const final = (line: string) => /^[A-Z]{4}\b|^Subject:/.test(line)
    ? (text: string) => /^\d{3} [^\r\n]*\r\n/m.test(text) // LMTP: LHLO, MAIL, RCPT, DATA, the message, QUIT
    : (text: string) => new RegExp(`^(?:${line.split(' ')[0]} |\\* BYE )[^\\r\\n]*\\r\\n`, 'm').test(text);
  await until((text) => text.includes('\r\n'), 0);
  buf = buf.replace(/^[^\n]*\n/, ''); // the greeting names each server
  for (const l of lines) { const from = buf.length; sock.write(`${l}\r\n`); await until(final(l), from); }
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
