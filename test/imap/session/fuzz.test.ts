/**
 * Bad input never crashes or wedges an IMAP session: random bytes and
 * mutated valid commands (bit flips, cut lines, duplicated and dropped
 * bytes, huge literal announcements) go through real Session objects over
 * in-memory sockets, authenticated on a real Maildir — ≥ 100,000 cases
 * (FUZZ_CASES to change). Every case must end (the session reaches a state
 * where it answers or waits for more input, no exception escapes), and a
 * fresh session after each batch still answers NOOP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { Session } from '../../../src/imap/session.js';
import { MailStore } from '../../../src/mailstore/store.js';
import { Logger } from '../../../src/log/logger.js';
import type { LoginService } from '../../../src/imap/login.js';
import { parseConfigText } from '../../helpers/config-text.js';
import { tempDir } from '../../helpers/tmp.js';

const CASES = Number(process.env.FUZZ_CASES ?? 100_000);

const TEMPLATES = [
  'a SELECT INBOX', 'b FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE)', 'c UID FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>',
  'd STORE 1 +FLAGS (\\Seen)', 'e SEARCH OR SEEN (UNSEEN LARGER 10) SUBJECT "x"', 'f LIST "" "*"', 'g STATUS INBOX (MESSAGES SIZE)',
  'h APPEND INBOX (\\Seen) {5+}\r\nhello', 'i COPY 1 INBOX', 'j UID MOVE 1:* INBOX', 'k EXPUNGE', 'l NOOP', 'm CAPABILITY',
  'n EXAMINE INBOX', 'o CLOSE', 'p UNSELECT', 'q LSUB "" %', 'r CREATE "x y"', 's ENABLE UTF8=ACCEPT', 't ID ("name" "x")',
];

function duplexPair(): { sock: Duplex; out: Buffer[] } {
  const out: Buffer[] = [];
  const sock = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) { out.push(chunk); cb(); },
    final(cb) { cb(); },
  });
  return { sock, out };
}

function rnd(n: number): number { return Math.floor(Math.random() * n); }

function mutate(s: Buffer): Buffer {
  const b = Buffer.from(s);
  const arr = [...b];
  for (let k = 0, n = 1 + rnd(4); k < n; k++) {
    const op = rnd(6);
    const i = rnd(arr.length + 1);
    if (op === 0 && arr.length) arr[Math.min(i, arr.length - 1)] ^= 1 << rnd(8);
    else if (op === 1) arr.splice(i, 0, rnd(256));
    else if (op === 2 && arr.length) arr.splice(i, 1);
    else if (op === 3) arr.splice(i, 0, ...Buffer.from(['{', String(rnd(2) ? 4294967295 : rnd(100)), rnd(2) ? '+' : '', '}\r\n'].join('')));
    else if (op === 4) arr.splice(i, 0, ...Buffer.from(['(', ')', '"', '\\', '[', ']', '\r\n', '\0', '*', '%'][rnd(10)]));
    else arr.length = Math.min(arr.length, i);
  }
  return Buffer.from(arr);
}

function randomBytes(): Buffer {
  return Buffer.from(Array.from({ length: rnd(80) }, () => (rnd(3) ? 32 + rnd(95) : rnd(256))));
}

async function settle(): Promise<void> { await new Promise((r) => setImmediate(r)); }

test(`IMAP fuzz: ${CASES} cases of random and mutated input never crash or wedge a session`, { timeout: 600_000 }, async (t) => {
  const home = tempDir(t);
  const config = await parseConfigText('mail_location = maildir:~/Maildir\n');
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  for (let i = 0; i < 3; i++) await inbox.append(Buffer.from(`Subject: m${i}\n\nbody ${i}\n`));
  const log = new Logger('fuzz');
  const login = { login: async () => ({ ok: false, text: 'no' }), log } as unknown as LoginService;
  const escaped: unknown[] = [];
  const onErr = (e: unknown) => escaped.push(e);
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  t.after(() => { process.off('uncaughtException', onErr); process.off('unhandledRejection', onErr); });

  const noopWorks = async (): Promise<boolean> => {
    const { sock, out } = duplexPair();
    const s = new Session(sock, { config, log, login, rip: '127.0.0.1', lip: '127.0.0.1', secured: true, preauth: { user: 'fuzz', store } });
    await s.start();
    sock.push(Buffer.from('zz NOOP\r\n'));
    for (let i = 0; i < 200 && !Buffer.concat(out).toString('latin1').includes('zz OK'); i++) await new Promise((r) => setTimeout(r, 5));
    sock.destroy();
    return Buffer.concat(out).toString('latin1').includes('zz OK');
  };

  let bytesOut = 0;
  for (let c = 0; c < CASES; c++) {
    const { sock, out } = duplexPair();
    const preauth = c % 2 === 0;
    const s = new Session(sock, { config, log, login, rip: '127.0.0.1', lip: '127.0.0.1', secured: true, preauth: preauth ? { user: 'fuzz', store } : undefined });
    await s.start();
    const input = rnd(3) === 0 ? randomBytes() : Buffer.concat([mutate(Buffer.from(TEMPLATES[rnd(TEMPLATES.length)] + '\r\n')), Buffer.from(rnd(2) ? 'y NOOP\r\n' : '')]);
    // split anywhere, like TCP does
    const cut = rnd(input.length + 1);
    sock.push(input.subarray(0, cut));
    sock.push(input.subarray(cut));
    await settle();
    sock.destroy(); // the client goes away, possibly mid-literal or mid-IDLE
    await settle();
    bytesOut += out.reduce((a, b) => a + b.length, 0);
    if (escaped.length) assert.fail(`case ${c} (${JSON.stringify(input.toString('latin1'))}) let an exception escape: ${String(escaped[0])}`);
    if (c % 5000 === 4999) assert.ok(await noopWorks(), `a fresh session answers NOOP after ${c + 1} cases`);
  }
  assert.ok(await noopWorks());
  // nothing half-written is visible: every file in new/ and cur/ is a complete message with a UID
  await inbox.sync();
  for (const m of inbox.messages) {
    const parts: Buffer[] = [];
    for await (const p of inbox.read(m)) parts.push(p);
    assert.ok(Buffer.concat(parts).length > 0);
  }
  t.diagnostic(`${CASES} cases, ${bytesOut} bytes of replies, ${inbox.messages.length} messages in INBOX at the end`);
});
