/**
 * Connection limits compared with a private real Dovecot 2.3.19 (and
 * Pigeonhole's managesieve) under the same settings: what a client is told
 * when mail_max_userip_connections refuses its login (IMAP: `NO [LIMIT] …`,
 * ManageSieve: `NO "…"`, then the connection closes), when the login
 * service's cap drops an older unauthenticated connection (`BYE Connection
 * queue full`; Sealmail drops the oldest, Dovecot with service_count = 1
 * one or two of the oldest), and when the logged-in service is full (the
 * connection closes without a reply); and the log lines that go with them.
 * Transcripts are compared after the greeting.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';

const LIMITS = `mail_max_userip_connections = 1
service imap-login {
  process_limit = 2
}
service managesieve-login {
  process_limit = 2
}
service imap {
  process_limit = 2
}
`;

interface Conn { sock: Socket; text: () => string; closed: () => boolean }

function open(t: TestContext, port: number): Conn {
  const sock = connect(port, '127.0.0.1');
  let buf = '';
  let closed = false;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { buf += d; });
  sock.on('close', () => { closed = true; });
  sock.on('error', () => undefined);
  t.after(() => sock.destroy());
  return { sock, text: () => buf, closed: () => closed };
}

async function until(what: string, done: () => boolean, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; !done();) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The greeting ends with the server's OK line (IMAP `* OK …`, ManageSieve `OK "…"`). */
const greeted = (c: Conn, sieve: boolean) => (sieve ? /^OK ".*"\r\n/m : /^\* OK .*\r\n/).test(c.text());
const afterGreeting = (c: Conn, sieve: boolean) => c.text().slice(c.text().search(sieve ? /^OK ".*"\r\n/m : /^\* OK .*\r\n/m)).replace(/^.*\r\n/, '');

async function login(t: TestContext, port: number, sieve: boolean, user: string): Promise<Conn> {
  const c = open(t, port);
  await until('greeting', () => greeted(c, sieve));
  c.sock.write(sieve ? `AUTHENTICATE "PLAIN" "${Buffer.from(`\0${user}\0pass`).toString('base64')}"\r\n` : `a LOGIN ${user} pass\r\n`);
  return c;
}

/** Runs the scenarios on one server; returns the transcripts of the connections the limits hit. */
async function scenarios(t: TestContext, imapPort: number, sievePort: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const sieve of [false, true]) {
    const port = sieve ? sievePort : imapPort;
    const p = sieve ? 'sieve' : 'imap';
    // mail_max_userip_connections = 1: the second login of the same user from the same IP
    const first = await login(t, port, sieve, 'u@example.org');
    await until('first login', () => /Logged in/.test(first.text()));
    const second = await login(t, port, sieve, 'u@example.org');
    await until('second login refused and closed', () => second.closed());
    out[`${p} userip`] = afterGreeting(second, sieve);
    first.sock.destroy();
    // two login processes: a third unauthenticated connection drops the oldest
    const conns: Conn[] = [];
    for (let i = 0; i < 3; i++) {
      const c = open(t, port);
      conns.push(c);
      await until('greeting', () => greeted(c, sieve));
    }
    // Dovecot's login processes (service_count = 1) each pick their victim after a wait that is
    // shorter the older their client, plus up to 10 ms of chance, and often two go (its
    // master_service_overflow says so); Sealmail drops exactly the oldest (limits.test.ts)
    await until('an older connection dropped', () => conns[0].closed() || conns[1].closed());
    const dropped = conns.find((c) => c.closed())!;
    out[`${p} queue full`] = afterGreeting(dropped, sieve);
    for (const c of conns) c.sock.destroy();
  }
  // service imap { process_limit = 2 }: a third logged-in session (Dovecot waits 10 s for a free process)
  const a = await login(t, imapPort, false, 'a@example.org');
  const b = await login(t, imapPort, false, 'b@example.org');
  await until('two sessions', () => /Logged in/.test(a.text()) && /Logged in/.test(b.text()));
  const c = await login(t, imapPort, false, 'c@example.org');
  await until('third login closed', () => c.closed());
  out['imap service full'] = afterGreeting(c, false);
  return out;
}

const LOG_LINES: Array<[string, RegExp]> = [
  ['imap userip', /imap-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=1\): user=<u@example\.org>, method=PLAIN, rip=127\.0\.0\.1, lip=127\.0\.0\.1/],
  ['sieve userip', /managesieve-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=1\): user=<u@example\.org>, method=PLAIN, rip=127\.0\.0\.1/],
  ['imap-login full', /master: Warning: service\(imap-login\): process_limit \(2\) reached, client connections are being dropped/],
  ['managesieve-login full', /master: Warning: service\(managesieve-login\): process_limit \(2\) reached, client connections are being dropped/],
  ['imap queue full', /imap-login: Info: Disconnected: Connection queue full \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1/],
  ['sieve queue full', /managesieve-login: Info: Disconnected: Connection queue full \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1/],
  ['imap full', /master: Warning: service\(imap\): process_limit \(2\) reached, client connections are being dropped/],
  ['imap full login', /imap-login: Info: Disconnected: Internal login failure.*: user=<c@example\.org>, method=PLAIN/],
];

test('limit replies and log lines as Dovecot\'s imap-login, managesieve-login and master', async (t) => {
  const imapPort = await freePort();
  const sievePort = await freePort();
  const dv: Dovecot | null = setupDovecot(t, {
    start: true, protocols: 'imap sieve',
    extraConf: `disable_plaintext_auth = no\n${LIMITS}service imap-login {\n  inet_listener imap {\n    port = ${imapPort}\n  }\n}\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sievePort}\n  }\n}\n`,
  });
  if (!dv) return;
  const sealSieve = await freePort();
  const seal: SealmailServer = await startSealmail(t, {
    extraConf: `${LIMITS}service imap-login {\n  process_min_avail = 2\n}\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sealSieve}\n  }\n}\n`,
    rewriteConf: (text) => text.replace('protocols = imap\n', 'protocols = imap sieve\n'),
  });
  const [theirs, ours] = await Promise.all([scenarios(t, imapPort, sievePort), scenarios(t, seal.imapPort, sealSieve)]).catch((e) => { console.log(dv.log()); throw e; });
  assert.deepEqual(ours, theirs);
  assert.equal(theirs['imap userip'], 'a NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)\r\n');
  for (const [what, re] of LOG_LINES) {
    assert.match(dv.log(), re, `Dovecot: ${what}`);
    await until(`Sealmail log: ${what}`, () => re.test(seal.output())).catch(() => assert.match(seal.output(), re, `Sealmail: ${what}`));
  }
});
