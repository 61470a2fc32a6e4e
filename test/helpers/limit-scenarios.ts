/**
 * Dovecot's connection limits as scenarios over real sockets, run against a
 * server with mail_uid (the pools mode, test/server/limits.test.ts) and
 * against the root master without it (test/server/root-limits.test.ts):
 * mail_max_userip_connections, the login services' client_limit ×
 * process_limit dropping the oldest pre-login connection, and service imap
 * / managesieve client_limit × process_limit on logged-in sessions, each
 * with Dovecot 2.3.19's replies and log lines.
 */
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startSealmail, type SealmailServer } from './sealmail-server.js';
import { freePort } from './databases.js';
import { Wire, logged } from './line-wire.js';

export const IMAP_GREETING = /^\* OK .*\r\n/;
export const SIEVE_GREETING = /OK "Sealmail test ready\."\r\n/;
export const plain = (user: string) => Buffer.from(`\0${user}\0pass`).toString('base64');

export interface LimitServer { srv: SealmailServer; sieve: number }

/**
 * A server with ManageSieve beside IMAP and `conf` added; `rootMaster`: no
 * mail_uid (the ISPmail shape: uid/gid from the userdb), which as root is
 * the root-master mode.
 */
export async function limitServer(t: TestContext, conf: string, opts: { env?: Record<string, string>; rootMaster?: boolean } = {}): Promise<LimitServer> {
  const sieve = await freePort();
  const srv = await startSealmail(t, {
    env: opts.env,
    extraConf: `service managesieve-login {\n  inet_listener sieve {\n    port = ${sieve}\n  }\n}\n${conf}`,
    rewriteConf: (text) => {
      const out = text.replace('protocols = imap\n', 'protocols = imap sieve\n');
      return opts.rootMaster ? out.replace(/^mail_[ug]id = .*\n/gm, '') : out;
    },
  });
  if (opts.rootMaster) assert.match(srv.output(), /starting up for [^\n]*\(root master\)/, 'the root-master mode');
  return { srv, sieve };
}

export async function imapLogin(t: TestContext, port: number, user: string): Promise<Wire> {
  const w = await Wire.open(t, port, IMAP_GREETING);
  w.send(`a LOGIN ${user} pass`);
  await w.until(/^a OK .*\r\n/m, `login of ${user}`);
  return w;
}

export async function sieveLogin(t: TestContext, port: number, user: string): Promise<Wire> {
  const w = await Wire.open(t, port, SIEVE_GREETING);
  w.send(`AUTHENTICATE "PLAIN" "${plain(user)}"`);
  await w.until(/^OK "Logged in\."\r\n/m, `sieve login of ${user}`);
  return w;
}

/** imap-login: `processes` processes, 2 connections in all; managesieve-login: 2 connections in one process. */
export const loginCapConf = (processes: number) => `service imap-login {\n  process_min_avail = ${processes}\n  process_limit = 2\n}\nservice managesieve-login {\n  client_limit = 2\n  process_limit = 1\n  service_count = 0\n}\n`;

/** With loginCapConf: the third pre-login connection drops the first, wherever it is; logged-in sessions don't count. */
export async function loginCapDropsOldest(t: TestContext, { srv, sieve }: LimitServer): Promise<void> {
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
  // a pre-login connection that logs in leaves the login service's count: one more fits without a drop
  second.send('e LOGIN b@example.org pass');
  await second.until(/^e OK /m, 'login of a counted connection');
  const fourth = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  third.send('f NOOP');
  await third.until(/^f OK /m, 'the older connection stays');
  fourth.send('g NOOP');
  await fourth.until(/^g OK /m, 'NOOP on the newest');
}

/** 2 per user and IP for IMAP, 1 for ManageSieve; two login processes. */
export const USERIP_CONF = 'mail_max_userip_connections = 2\nprotocol sieve {\n  mail_max_userip_connections = 1\n}\nservice imap-login {\n  process_min_avail = 2\n}\n';

/** With USERIP_CONF: the user over the limit is refused with Dovecot's text, others log in, a freed slot is reusable. */
export async function userIpLimit(t: TestContext, { srv, sieve }: LimitServer): Promise<void> {
  const one = await imapLogin(t, srv.imapPort, 'u@example.org');
  await imapLogin(t, srv.imapPort, 'u@example.org');
  const third = await Wire.open(t, srv.imapPort, IMAP_GREETING);
  third.send('a LOGIN u@example.org pass');
  assert.equal(await third.until(/\r\n$/, 'userip refusal'), 'a NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)\r\n');
  await third.gone('refused login');
  await logged(srv, /imap-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=2\): user=<u@example\.org>, method=PLAIN, rip=127\.0\.0\.1, lip=127\.0\.0\.1/, 'userip log');
  // another user goes on; the same user over ManageSieve is counted apart, with its own limit of 1
  const other = await imapLogin(t, srv.imapPort, 'other@example.org');
  other.send('b NOOP');
  await other.until(/^b OK NOOP completed/m, 'NOOP of the other user');
  await sieveLogin(t, sieve, 'u@example.org');
  const sieveSecond = await Wire.open(t, sieve, SIEVE_GREETING);
  sieveSecond.send(`AUTHENTICATE "PLAIN" "${plain('u@example.org')}"`);
  assert.equal(await sieveSecond.until(/\r\n$/, 'sieve userip refusal'), 'NO "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)"\r\n');
  await sieveSecond.gone('refused sieve login');
  await logged(srv, /managesieve-login: Info: Disconnected: Maximum number of connections from user\+IP exceeded \(mail_max_userip_connections=1\): user=<u@example\.org>, method=PLAIN/, 'sieve userip log');
  await sieveLogin(t, sieve, 'other@example.org');
  // one session ends: its slot is free again (the master hears of the end from the process that held it)
  one.send('z LOGOUT');
  await one.gone('logout');
  for (const end = Date.now() + 20_000; ;) {
    const w = await Wire.open(t, srv.imapPort, IMAP_GREETING);
    w.send('a LOGIN u@example.org pass');
    const r = await w.until(/^a (OK|NO) .*\r\n/m, 'login after logout');
    if (r.includes('a OK')) break;
    if (Date.now() > end) assert.fail(`slot not freed: ${r}`);
  }
}

/** service imap: 2 sessions; service managesieve: 1; two login processes. */
export const SESSION_CAP_CONF = 'service imap-login {\n  process_min_avail = 2\n}\nservice imap {\n  process_limit = 2\n}\nservice managesieve {\n  client_limit = 1\n  process_limit = 1\n}\n';

/** With SESSION_CAP_CONF: a login beyond the logged-in service's cap is closed without a reply, as Dovecot does. */
export async function sessionCap(t: TestContext, { srv, sieve }: LimitServer): Promise<void> {
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
}
