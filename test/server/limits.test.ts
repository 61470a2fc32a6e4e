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
import { connect } from 'node:net';
import { Wire, logged } from '../helpers/line-wire.js';
import { IMAP_GREETING, SIEVE_GREETING, SESSION_CAP_CONF, USERIP_CONF, imapLogin, limitServer, loginCapConf, loginCapDropsOldest, sessionCap, sieveLogin, userIpLimit, type LimitServer } from '../helpers/limit-scenarios.js';

async function server(t: TestContext, conf: string, env: Record<string, string> = {}): Promise<LimitServer> {
  return limitServer(t, conf, { env });
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
  // Pigeonhole's client_destroy(client, "Disconnected for inactivity") with managesieve_logout_format
  await logged(srv, /managesieve\(silent@example\.org\)<\d+><[^>]+>: Info: Disconnected: Disconnected for inactivity bytes=\d+\/\d+/, 'sieve autologout');
  // the idler, logged in before the silent one, is still there
  assert.ok(!idler.closed);
  assert.match(idler.buf, /^\* OK Still here\r\n/m);
  idler.send('DONE');
  await idler.until(/^i OK Idle completed/m, 'IDLE done');
});

for (const processes of [2, 1]) {
  test(`the login service's cap drops the oldest unauthenticated connection (${processes === 1 ? 'IMAP in the master' : 'two IMAP workers'}, ManageSieve)`, async (t) => {
    await loginCapDropsOldest(t, await server(t, loginCapConf(processes)));
  });
}

test('mail_max_userip_connections per user, IP and protocol across IMAP workers; a freed slot is reusable', async (t) => {
  await userIpLimit(t, await server(t, USERIP_CONF));
});

test('service imap / managesieve client_limit × process_limit caps logged-in sessions across workers', async (t) => {
  await sessionCap(t, await server(t, SESSION_CAP_CONF));
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
