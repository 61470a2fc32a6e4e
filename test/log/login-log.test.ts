/**
 * The login processes' log line as login-common's client_get_log_str makes
 * it from login_log_format_elements and login_log_format (config/login-log.ts),
 * and the disconnect line's attempt count (LoginProgress): the shapes
 * log-diff.test.ts compares with the real Dovecot for the defaults, here for
 * the settings an admin changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loginLogLine, newLoginSessionId, type LoginConn } from '../../src/config/login-log.js';
import { LoginProgress } from '../../src/config/connection-limits.js';
import { Logger, setLogSink } from '../../src/log/logger.js';
import { parseConfigText } from '../helpers/config-text.js';

const conn = async (conf: string, over: Partial<LoginConn> = {}): Promise<LoginConn> =>
  ({ config: await parseConfigText(conf), service: 'imap', rip: '192.0.2.7', lip: '198.51.100.1', tls: false, ...over });

test('default elements: empty ones left out, user=<> kept, %c is TLS / secured / nothing', async () => {
  const c = await conn('');
  assert.equal(loginLogLine(c, 'Login', { user: 'ann@example.org', mech: 'PLAIN', mpid: 4711, session: 'S' }),
    'Login: user=<ann@example.org>, method=PLAIN, rip=192.0.2.7, lip=198.51.100.1, mpid=4711, session=<S>');
  assert.equal(loginLogLine({ ...c, tls: true }, 'Disconnected: Aborted login by logging out (no auth attempts in 0 secs)', { session: 'S' }),
    'Disconnected: Aborted login by logging out (no auth attempts in 0 secs): user=<>, rip=192.0.2.7, lip=198.51.100.1, TLS, session=<S>');
  assert.equal(loginLogLine({ ...c, trusted: true }, 'x', { session: 'S' }), 'x: user=<>, rip=192.0.2.7, lip=198.51.100.1, secured, session=<S>');
  assert.equal(loginLogLine({ ...c, tlsError: 'SSL_accept() failed' }, 'x', { session: 'S' }),
    'x: user=<>, rip=192.0.2.7, lip=198.51.100.1, TLS handshaking: SSL_accept() failed, session=<S>');
});

test('login_log_format_elements and login_log_format as the admin sets them', async () => {
  const c = await conn('login_log_format_elements = user=<%n> dom=%d proto=%s conn=%c port=%a\nlogin_log_format = %s -- %$\n');
  // %n (username) kept even empty; dom=%d empty for a user without a domain, conn=%c on a plain
  // connection from elsewhere, port=%a unknown: each as with every variable empty → dropped
  assert.equal(loginLogLine(c, 'Login', { user: 'ann', mech: 'PLAIN', session: 'S' }), 'user=<ann>, proto=imap -- Login');
  assert.equal(loginLogLine({ ...c, tls: true, lport: 993 }, 'Login', { user: 'ann@example.org', session: 'S' }), 'user=<ann>, dom=example.org, proto=imap, conn=TLS, port=993 -- Login');
});

test('the failure line counts every attempt of the connection and is logged once, when it ends', async () => {
  const c = await conn('');
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  try {
    const p = new LoginProgress();
    p.attempt('PLAIN'); p.failed('bad@example.org');
    p.attempt('LOGIN'); p.failed('bad2@example.org');
    const log = new Logger('imap-login');
    p.logDisconnect(log, 'Connection closed', false, c);
    p.logDisconnect(log, 'Connection closed', false, c);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^imap-login: Info: Disconnected: Connection closed \(auth failed, 2 attempts in 0 secs\): user=<bad2@example\.org>, method=LOGIN, rip=192\.0\.2\.7, lip=198\.51\.100\.1, session=<[A-Za-z0-9+/]{16}>$/);
  } finally { setLogSink(null); }
});

test('session ids have client_get_session_id\'s shape: 16 base64 characters for IPv4, 32 for IPv6', () => {
  assert.match(newLoginSessionId('127.0.0.1', 40000), /^[A-Za-z0-9+/]{12}AAAB$/); // ...127.0.0.1 is 7f 00 00 01
  assert.match(newLoginSessionId('2001:db8::1', 40000), /^[A-Za-z0-9+/]{32}$/);
  assert.notEqual(newLoginSessionId('127.0.0.1', 1), newLoginSessionId('127.0.0.1', 2));
});
