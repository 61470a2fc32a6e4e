/**
 * The fault boundary of each listener's session: an exception nobody
 * expected (here a user database that throws instead of answering, as a
 * driver bug or a broken connection can) ends that one session with one
 * Dovecot-shaped log line; it escapes nowhere (before the boundary it was an
 * unhandled rejection: the whole master, with every service, went down), and
 * a second session running at the same time is answered normally.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { setLogSink } from '../../src/log/logger.js';
import { Logger } from '../../src/log/logger.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { AuthPenalty } from '../../src/auth/penalty.js';
import { ManageSieveSession } from '../../src/managesieve/session.js';
import { LmtpSession } from '../../src/lmtp/session.js';
import { AuthClientSession } from '../../src/authsock/server.js';
import { AuthUserdbSession } from '../../src/authsock/userdb.js';
import { QuotaStatusSession } from '../../src/quota-status/session.js';
import { escapes, memSocket, until, type MemSocket } from '../fuzz/mem-socket.js';

const boom = () => { throw new Error('userdb exploded'); };
/** An engine whose every lookup throws (a sync throw inside the async path: a rejected promise). */
const broken = { authenticate: async () => boom(), lookupUser: async () => boom(), iterateUsers: async () => boom(), normalizeUser: (u: string) => u } as unknown as AuthEngine;

async function setup(t: import('node:test').TestContext) {
  const config = await parseConfigText('mail_location = maildir:~/Maildir\nauth_failure_delay = 0\nauth_mechanisms = plain login\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=1000 gid=1000 home=/nonexistent/%u\n}\n');
  const good = new AuthEngine(config, 'smtp');
  t.after(() => good.close());
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  return { config, good, lines };
}

/** Runs `start` on a broken and a working engine side by side; the broken one must end alone. */
async function bothSessions(start: (m: MemSocket, engine: AuthEngine) => void, good: AuthEngine, send: string, goodReply: string): Promise<{ bad: MemSocket; ok: MemSocket; escaped: unknown[] }> {
  const bad = memSocket();
  const ok = memSocket();
  const { escaped } = await escapes(async () => {
    start(bad, broken);
    start(ok, good);
    bad.sock.push(Buffer.from(send));
    ok.sock.push(Buffer.from(send));
    assert.ok(await until(() => bad.gone() && ok.text().includes(goodReply)), `bad: ${bad.text()} / ok: ${ok.text()}`);
  });
  return { bad, ok, escaped };
}

const PLAIN = Buffer.from('\0u@x\0pass').toString('base64');

test('ManageSieve: a failing lookup ends that session with a BYE and an Error line', async (t) => {
  const { config, good, lines } = await setup(t);
  const r = await bothSessions((m, auth) => new ManageSieveSession(m.sock, { config, auth, resolveHome: () => '/nonexistent', tlsAvailable: false, secured: true }).start(),
    good, `AUTHENTICATE "PLAIN" "${PLAIN}"\r\n`, 'OK "Logged in."');
  assert.deepEqual(r.escaped, []);
  assert.match(r.bad.text(), /BYE "Internal error occurred\. Refer to server log for more information\."\r\n$/);
  assert.ok(lines.some((l) => /^managesieve-login: Error: Internal error: userdb exploded/.test(l)), lines.join('\n'));
});

test('LMTP: a failing recipient lookup ends that session with a 421 and an Error line', async (t) => {
  const { config, good, lines } = await setup(t);
  const r = await bothSessions((m, auth) => new LmtpSession(m.sock, config, auth, '127.0.0.1'), good, 'LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@x>\r\n', '250 2.1.5');
  assert.deepEqual(r.escaped, []);
  assert.match(r.bad.text(), /421 4\.3\.0 \S+ Internal error occurred\. Refer to server log for more information\.\r\n$/);
  assert.ok(lines.some((l) => new RegExp(`^lmtp\\(${process.pid}\\): Error: Internal error: userdb exploded`).test(l)), lines.join('\n'));
});

test('auth client socket: a failing authentication drops that client with an Error line', async (t) => {
  const { config, good, lines } = await setup(t);
  const r = await bothSessions((m, auth) => new AuthClientSession(m.sock, config, auth, new AuthPenalty(), new Logger('auth')), good,
    `VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\tresp=${PLAIN}\n`, 'OK\t1\tuser=u@x');
  assert.deepEqual(r.escaped, []);
  assert.ok(lines.some((l) => /^auth: Error: auth client: Internal error: userdb exploded/.test(l)), lines.join('\n'));
});

test('auth-userdb: a failing lookup drops that client with an Error line', async (t) => {
  const { good, lines } = await setup(t);
  const r = await bothSessions((m, auth) => new AuthUserdbSession(m.sock, auth, new Logger('auth')), good, 'VERSION\t1\t1\nUSER\t1\tu@x\tservice=lda\n', 'USER\t1\tu@x');
  assert.deepEqual(r.escaped, []);
  assert.ok(lines.some((l) => /^auth: Error: auth-master client: lookup failed: userdb exploded/.test(l)), lines.join('\n'));
});

test('quota-status: a failing lookup ends that policy connection with an Error line', async (t) => {
  const { config, good, lines } = await setup(t);
  const r = await bothSessions((m, auth) => new QuotaStatusSession(m.sock, config, auth), good, 'request=smtpd_access_policy\nrecipient=u@x\n\n', 'action=OK\n\n');
  assert.deepEqual(r.escaped, []);
  assert.ok(lines.some((l) => /^quota-status: Error: Internal error: userdb exploded/.test(l)), lines.join('\n'));
});

test('IMAP: an exception outside any command handler ends that session with a BYE and an Error line', async (t) => {
  const { config, lines } = await setup(t);
  const { Session } = await import('../../src/imap/session.js');
  const { MailStore } = await import('../../src/mailstore/store.js');
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home: tempDir(t, 'faults-imap') });
  await store.ensureRoot();
  const login = {} as unknown as import('../../src/imap/login.js').LoginService;
  const bad = memSocket();
  const { escaped } = await escapes(async () => {
    const s = new Session(bad.sock, { config, log: new Logger('imap(u)'), login, rip: '127.0.0.1', lip: '127.0.0.1', secured: true, preauth: { user: 'u', store } });
    await s.start();
    // the literal's start is a reader event, handled before any command runs: no command's catch is around it
    s.onLiteralStart = () => { throw new Error('store exploded'); };
    bad.sock.push(Buffer.from('a APPEND INBOX {5+}\r\nhello\r\n'));
    assert.ok(await until(() => bad.gone()), bad.text());
  });
  assert.deepEqual(escaped.map(String), []);
  assert.match(bad.text(), /\* BYE Internal error occurred\. Refer to server log for more information\.\r\n$/);
  assert.ok(lines.some((l) => /^imap\(u\): Error: Internal error: store exploded/.test(l)), lines.join('\n'));
});
