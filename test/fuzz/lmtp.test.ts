/**
 * LMTP fuzz (RFC 2033 + CHUNKING, as Dovecot's lib-smtp answers): random
 * bytes and mutated dialogues — LHLO/MAIL/RCPT/DATA/BDAT/RSET/NOOP/VRFY/QUIT
 * with broken paths and parameters, dot-stuffed bodies, BDAT chunk sizes
 * that lie, huge lines — through real LmtpSession objects delivering into a
 * real Maildir, then over real connections to a real server, which must
 * still answer every protocol afterwards. See driver.ts for what a case asserts.
 */
import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../helpers/config-text.js';
import { mailIds } from '../helpers/dovecot.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { LmtpSession } from '../../src/lmtp/session.js';
import { memTempDir, rnd } from './mem-socket.js';
import { CASES, fuzzSessions, fuzzSockets, type FuzzTarget } from './driver.js';
import { allAnswer, startLiveServer } from './live-server.js';

const BODY = ['Subject: x\r\n\r\nbody\r\n', '..dot-stuffed\r\n...\r\n', 'no final newline', '\r\n.\r\n', 'a'.repeat(5000) + '\r\n', '.\n', 'x\n.\nRCPT TO:<u@x>\n'];
const STEPS = [
  () => 'LHLO client.example', () => 'LHLO', () => `MAIL FROM:<a@b>${rnd(2) ? ' BODY=8BITMIME' : ''}`, () => 'MAIL FROM:<>', () => 'MAIL FROM: <a@b>', () => 'MAIL FROM:<a@b> SIZE=99999999999',
  () => `RCPT TO:<u${rnd(2) ? '+d' : ''}@x>`, () => 'RCPT TO:<>', () => 'RCPT TO:u@x', () => 'RCPT TO:<u@x> NOTIFY=NEVER',
  () => `DATA\r\n${BODY[rnd(BODY.length)]}\r\n.`, () => 'DATA x',
  () => { const c = BODY[rnd(BODY.length)]; return `BDAT ${c.length}${rnd(2) ? ' LAST' : ''}\r\n${c}`; },
  () => 'BDAT 4294967295 LAST', () => 'BDAT 5 BOGUS\r\nhello', () => 'BDAT x',
  () => 'RSET', () => 'NOOP', () => 'NOOP "quoted string"', () => 'VRFY <u@x>', () => 'QUIT', () => 'HELO x', () => 'A'.repeat(40),
  () => 'RCPT TO:<' + 'u'.repeat(5000) + '@x>',
];

test(`LMTP fuzz: ${CASES} cases in memory, then over real sockets`, { timeout: 900_000 }, async (t) => {
  const dir = memTempDir(t, 'fuzz-lmtp');
  mkdirSync(join(dir, 'home'));
  const { uid, gid } = mailIds();
  const config = await parseConfigText(`mail_location = maildir:~/Maildir\nrecipient_delimiter = +\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=${uid} gid=${gid} home=${dir}/home/%u\n}\n`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());

  const valid = () => ['LHLO x', 'MAIL FROM:<a@b>', 'RCPT TO:<u@x>'];
  const target: FuzzTarget = {
    start: (sock) => new LmtpSession(sock, config, auth, '127.0.0.1'),
    dialogue: () => {
      const lines = rnd(2) ? valid() : [];
      for (let i = 0, n = 1 + rnd(4); i < n; i++) lines.push(STEPS[rnd(STEPS.length)]());
      return Buffer.from(lines.join('\r\n') + '\r\n', 'latin1');
    },
    specials: ['<', '>', ':', '\r\n', '\n', '\r\n.\r\n', '.', '\0', ' ', '"', '\\', '=', 'BDAT 3 LAST\r\n'],
    probe: { send: 'LHLO x\r\n', expect: '250 PIPELINING' },
  };
  await fuzzSessions(t, target);

  const live = await startLiveServer(t);
  await fuzzSockets(t, target, { port: live.lmtpPort });
  await allAnswer(live);
});
