/**
 * Connection limits and deadlines over real sockets against a real Sealmail
 * process, IMAP (in two worker processes, so every count must hold across
 * them, and in the master) and ManageSieve, with Dovecot 2.3.19's texts:
 * the login deadline that no traffic extends, autologout after login (and
 * IDLE's keepalive keeping a session), the login service's cap dropping the
 * oldest unauthenticated connection, the logged-in service's cap, and
 * mail_max_userip_connections per user, IP and protocol, and a client that
 * logs out but never closes its side losing the socket. The deadlines,
 * minutes in Dovecot and not settings there, are shortened through the
 * SEALMAIL_TEST_* hooks of src/config/connection-limits.ts; every wait is a
 * bounded wait for the server's own reply or disconnect.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';

/** A raw line client: everything the server said, waits for a pattern or the close. */
class Wire {
  buf = '';
  closed = false;
  private constructor(readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { this.buf += d; });
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => undefined);
  }
  static async open(t: TestContext, port: number, greeting: RegExp): Promise<Wire> {
    const w = new Wire(connect(port, '127.0.0.1'));
    t.after(() => w.sock.destroy());
    await w.until(greeting, 'greeting');
    return w;
  }
  /** Wait (bounded) until the text since the last wait matches; returns it. */
  async until(re: RegExp, what: string, ms = 20_000): Promise<string> {
    for (const end = Date.now() + ms; !re.test(this.buf);) {
      if (Date.now() > end || (this.closed && !re.test(this.buf))) {
        if (this.closed && Date.now() <= end) await new Promise((r) => setTimeout(r, 50)); // bytes in flight
        if (re.test(this.buf)) break;
        throw new Error(`no ${what}${this.closed ? ' (closed)' : ''}; got ${JSON.stringify(this.buf.slice(-400))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const out = this.buf;
    this.buf = '';
    return out;
  }
  async gone(what: string, ms = 20_000): Promise<void> {
    for (const end = Date.now() + ms; !this.closed;) {
      if (Date.now() > end) throw new Error(`connection not closed: ${what}; got ${JSON.stringify(this.buf.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  send(line: string): void { this.sock.write(`${line}\r\n`); }
}

const IMAP_GREETING = /^\* OK .*\r\n/;
const SIEVE_GREETING = /OK "Sealmail test ready\."\r\n/;
const plain = (user: string) => Buffer.from(`\0${user}\0pass`).toString('base64');

async function server(t: TestContext, conf: string, env: Record<string, string> = {}): Promise<{ srv: SealmailServer; sieve: number }> {
  const sieve = await freePort();
  const srv = await startSealmail(t, {
    env,
    extraConf: `service managesieve-login {\n  inet_listener sieve {\n    port = ${sieve}\n  }\n}\n${conf}`,
    rewriteConf: (text) => text.replace('protocols = imap\n', 'protocols = imap sieve\n'),
  });
  return { srv, sieve };
}

async function imapLogin(t: TestContext, port: number, user: string): Promise<Wire> {
  const w = await Wire.open(t, port, IMAP_GREETING);
  w.send(`a LOGIN ${user} pass`);
  await w.until(/^a OK .*\r\n/m, `login of ${user}`);
  return w;
}

async function sieveLogin(t: TestContext, port: number, user: string): Promise<Wire> {
  const w = await Wire.open(t, port, SIEVE_GREETING);
  w.send(`AUTHENTICATE "PLAIN" "${plain(user)}"`);
  await w.until(/^OK "Logged in\."\r\n/m, `sieve login of ${user}`);
  return w;
}

/** Wait (bounded) for a line in the server's log. */
async function logged(srv: SealmailServer, re: RegExp, what: string): Promise<string> {
  for (const end = Date.now() + 20_000; ;) {
    const m = re.exec(srv.output());
    if (m) return m[0];
    if (Date.now() > end) throw new Error(`not logged: ${what}\n${srv.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('an unauthenticated connection is cut at the login deadline whatever it sends; logged-in ones stay', async (t) => {
  const { srv, sieve } = await server(t, 'service imap-login {\n  process_min_avail = 2\n}\n', { SEALMAIL_TEST_LOGIN_TIMEOUT_MS: '4000' });
  const user = await imapLogin(t, srv.imapPort, 'stay@example.org');
  const sieveUser = await sieveLogin(t, sieve, 'stay@example.org');
  const busy = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  const sasl = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  const sieveBusy = await Wire.open(t, sieve, SIEVE_GREETING);
  const sieveSasl = await Wire.open(t, sieve, SIEVE_GREETING);
  sasl.send('a AUTHENTICATE PLAIN');
  await sasl.until(/^\+ \r\n/, 'SASL continuation');
  sieveSasl.send('AUTHENTICATE "PLAIN"');
  await sieveSasl.until(/^""\r\n/, 'sieve SASL continuation');
  // traffic does not extend the deadline (Dovecot's imap-login cuts at 180 s from connect)
  const noop = setInterval(() => { busy.send('n NOOP'); sieveBusy.send('NOOP'); }, 200);
  t.after(() => clearInterval(noop));
  await busy.until(/\* BYE Disconnected for inactivity\.\r\n$/, 'IMAP BYE at the deadline');
  await sieveBusy.until(/BYE "Disconnected for inactivity\."\r\n$/, 'ManageSieve BYE at the deadline');
  clearInterval(noop);
  assert.equal(await sasl.until(/\r\n$/, 'BYE during SASL'), '* BYE Disconnected for inactivity during authentication.\r\n');
  assert.equal(await sieveSasl.until(/\r\n$/, 'sieve BYE during SASL'), 'BYE "Disconnected for inactivity during authentication."\r\n');
  await Promise.all([busy.gone('imap'), sasl.gone('imap sasl'), sieveBusy.gone('sieve'), sieveSasl.gone('sieve sasl')]);
  await logged(srv, /imap-login: Info: Disconnected: Inactivity \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1/, 'IMAP deadline');
  await logged(srv, /imap-login: Info: Disconnected: Inactivity during authentication \(client didn't finish SASL auth, waited \d+ secs\): user=<>, method=PLAIN, rip=127\.0\.0\.1/, 'IMAP SASL deadline');
  await logged(srv, /managesieve-login: Info: Disconnected: Inactivity \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1/, 'sieve deadline');
  await logged(srv, /managesieve-login: Info: Disconnected: Inactivity during authentication \(client didn't finish SASL auth, waited \d+ secs\): user=<>, method=PLAIN/, 'sieve SASL deadline');
  // the sessions that logged in before are not touched by the login deadline
  user.send('b NOOP');
  assert.match(await user.until(/^b OK .*\r\n/m, 'NOOP after the deadline'), /^b OK NOOP completed/m);
  sieveUser.send('NOOP');
  assert.match(await sieveUser.until(/^OK .*\r\n/m, 'sieve NOOP after the deadline'), /^OK "NOOP Completed"/m);
});

test('autologout after login ends silent sessions; IDLE\'s keepalive keeps one', async (t) => {
  const { srv, sieve } = await server(t, 'imap_idle_notify_interval = 1 secs\nservice imap-login {\n  process_min_avail = 2\n}\n', { SEALMAIL_TEST_IDLE_TIMEOUT_MS: '5000' });
  const idler = await imapLogin(t, srv.imapPort, 'idle@example.org');
  idler.send('i IDLE');
  await idler.until(/^\+ idling\r\n/, 'IDLE continuation');
  const silent = await imapLogin(t, srv.imapPort, 'silent@example.org');
  const sieveSilent = await sieveLogin(t, sieve, 'silent@example.org');
  assert.equal(await silent.until(/\r\n$/, 'autologout BYE'), '* BYE Disconnected for inactivity.\r\n');
  assert.equal(await sieveSilent.until(/\r\n$/, 'sieve autologout BYE'), 'BYE "Disconnected for inactivity"\r\n');
  await Promise.all([silent.gone('imap'), sieveSilent.gone('sieve')]);
  await logged(srv, /imap\(silent@example\.org\).*Info: Disconnected: Inactivity - no input for \d+ secs/, 'IMAP autologout');
  await logged(srv, /managesieve\(silent@example\.org\).*Info: Disconnected for inactivity/, 'sieve autologout');
  // the idler, logged in before the silent one, is still there
  assert.ok(!idler.closed);
  assert.match(idler.buf, /^\* OK Still here\r\n/m);
  idler.send('DONE');
  await idler.until(/^i OK Idle completed/m, 'IDLE done');
});

for (const processes of [2, 1]) {
  test(`the login service's cap drops the oldest unauthenticated connection (${processes === 1 ? 'IMAP in the master' : 'two IMAP workers'}, ManageSieve)`, async (t) => {
    const { srv, sieve } = await server(t, `service imap-login {\n  process_min_avail = ${processes}\n  process_limit = 2\n}\nservice managesieve-login {\n  client_limit = 2\n  process_limit = 1\n  service_count = 0\n}\n`);
    // logged-in sessions do not count against the login service
    const authed = await imapLogin(t, srv.imapPort, 'a@example.org');
    const sieveAuthed = await sieveLogin(t, sieve, 'a@example.org');
    const first = await Wire.open(t, srv.imapPort, IMAP_GREETING);
    const second = await Wire.open(t, srv.imapPort, IMAP_GREETING);
    const third = await Wire.open(t, srv.imapPort, IMAP_GREETING);
    assert.equal(await first.until(/\r\n$/, 'queue-full BYE'), '* BYE Connection queue full\r\n');
    await first.gone('oldest');
    const sFirst = await Wire.open(t, sieve, SIEVE_GREETING);
    const sSecond = await Wire.open(t, sieve, SIEVE_GREETING);
    const sThird = await Wire.open(t, sieve, SIEVE_GREETING);
    assert.equal(await sFirst.until(/\r\n$/, 'sieve queue-full BYE'), 'BYE "Connection queue full"\r\n');
    await sFirst.gone('sieve oldest');
    for (const [w, tag] of [[second, 'b'], [third, 'c'], [authed, 'd']] as const) {
      w.send(`${tag} NOOP`);
      await w.until(new RegExp(`^${tag} OK `, 'm'), `NOOP on ${tag}`);
    }
    for (const w of [sSecond, sThird, sieveAuthed]) { w.send('NOOP'); await w.until(/^OK /m, 'sieve NOOP'); }
    await logged(srv, /master: Warning: service\(imap-login\): process_limit \(2\) reached, client connections are being dropped/, 'imap-login warning');
    await logged(srv, /imap-login: Info: Disconnected: Connection queue full \(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1/, 'imap eviction');
    await logged(srv, /master: Warning: service\(managesieve-login\): client_limit \(2\) reached, client connections are being dropped/, 'managesieve-login warning');
    await logged(srv, /managesieve-login: Info: Disconnected: Connection queue full \(no auth attempts in \d+ secs\): user=<>/, 'sieve eviction');
  });
}

test('mail_max_userip_connections per user, IP and protocol across IMAP workers; a freed slot is reusable', async (t) => {
  const { srv, sieve } = await server(t, 'mail_max_userip_connections = 2\nprotocol sieve {\n  mail_max_userip_connections = 1\n}\nservice imap-login {\n  process_min_avail = 2\n}\n');
  const one = await imapLogin(t, srv.imapPort, 'u@example.org');
  await imapLogin(t, srv.imapPort, 'u@example.org');
  const third = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  third.send('a LOGIN u@example.org pass');
  assert.equal(await third.until(/\r\n$/, 'userip refusal'), 'a NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)\r\n');
  await third.gone('refused login');
  await logged(srv, /imap-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=2\): user=<u@example\.org>, method=PLAIN, rip=127\.0\.0\.1, lip=127\.0\.0\.1/, 'userip log');
  // another user, and the same user over ManageSieve (counted apart, its own limit of 1)
  await imapLogin(t, srv.imapPort, 'other@example.org');
  await sieveLogin(t, sieve, 'u@example.org');
  const sieveSecond = await Wire.open(t, sieve, SIEVE_GREETING);
  sieveSecond.send(`AUTHENTICATE "PLAIN" "${plain('u@example.org')}"`);
  assert.equal(await sieveSecond.until(/\r\n$/, 'sieve userip refusal'), 'NO "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)"\r\n');
  await sieveSecond.gone('refused sieve login');
  await logged(srv, /managesieve-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=1\): user=<u@example\.org>, method=PLAIN/, 'sieve userip log');
  // one session ends: its slot is free again (the master hears of the end from the worker)
  one.send('z LOGOUT');
  await one.gone('logout');
  for (const end = Date.now() + 20_000; ;) {
    const w = await Wire.open(t, srv.imapPort, IMAP_GREETING);
    w.send('a LOGIN u@example.org pass');
    const r = await w.until(/^a (OK|NO) .*\r\n/m, 'login after logout');
    if (r.includes('a OK')) break;
    if (Date.now() > end) assert.fail(`slot not freed: ${r}`);
  }
});

test('service imap / managesieve client_limit × process_limit caps logged-in sessions across workers', async (t) => {
  const { srv, sieve } = await server(t, 'service imap-login {\n  process_min_avail = 2\n}\nservice imap {\n  process_limit = 2\n}\nservice managesieve {\n  client_limit = 1\n  process_limit = 1\n}\n');
  await imapLogin(t, srv.imapPort, 'a@example.org');
  await imapLogin(t, srv.imapPort, 'b@example.org');
  const third = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  third.send('a LOGIN c@example.org pass');
  await third.gone('login beyond service imap\'s cap');
  assert.equal(third.buf, '', 'Dovecot closes without a reply');
  await logged(srv, /master: Warning: service\(imap\): process_limit \(2\) reached, client connections are being dropped/, 'imap warning');
  await logged(srv, /imap-login: Info: Disconnected: Internal login failure: user=<c@example\.org>, method=PLAIN/, 'imap refusal log');
  await sieveLogin(t, sieve, 'a@example.org');
  const sieveSecond = await Wire.open(t, sieve, SIEVE_GREETING);
  sieveSecond.send(`AUTHENTICATE "PLAIN" "${plain('b@example.org')}"`);
  await sieveSecond.gone('sieve login beyond the cap');
  assert.equal(sieveSecond.buf, '');
  await logged(srv, /master: Warning: service\(managesieve\): client_limit\/service_count \(1\) reached, client connections are being dropped/, 'managesieve warning');
});

test('a client that logs out but never closes its side does not keep the connection', async (t) => {
  const { srv, sieve } = await server(t, 'service imap-login {\n  process_min_avail = 2\n}\n');
  for (const [port, logout, greeting] of [[srv.imapPort, 'a LOGOUT', IMAP_GREETING], [sieve, 'LOGOUT', SIEVE_GREETING]] as const) {
    // half-open: the client keeps its side open after the server's FIN (Dovecot closes the fd at once)
    const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    t.after(() => sock.destroy());
    let buf = '';
    let ended = false;
    let gone = false;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { buf += d; });
    sock.on('end', () => { ended = true; });
    sock.on('error', () => { gone = true; });
    sock.on('close', () => { gone = true; });
    for (const end = Date.now() + 20_000; !greeting.test(buf);) {
      if (Date.now() > end) assert.fail(`no greeting: ${buf}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    sock.write(`${logout}\r\n`);
    // the client goes on writing: once the server has let go of the socket, the kernel answers with a reset
    for (const end = Date.now() + 20_000; !gone;) {
      if (Date.now() > end) assert.fail(`the server kept the half-closed connection (FIN seen: ${ended}): ${JSON.stringify(buf.slice(-200))}`);
      if (ended && sock.writable) sock.write('x NOOP\r\n');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ended, 'the server ended its side first');
  }
});
