/**
 * The limits Dovecot's master and login processes derive from the
 * configuration (src/config/connection-limits.ts): defaults as doveconf -d
 * and Pigeonhole give them, `client_limit` capped by `service_count`, the
 * default_* fall-backs, per-protocol mail_max_userip_connections, and the
 * master's warning wording for each kind of limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../helpers/config-text.js';
import { protocolLimits } from '../../src/config/connection-limits.js';

test('Dovecot 2.3.19 defaults: 1 × 100 unauthenticated, 1 × 1024 imap, 1 × 100 managesieve, 10 per user+IP', async () => {
  const c = await parseConfigText('');
  const imap = protocolLimits(c, 'imap');
  const sieve = protocolLimits(c, 'sieve');
  const conn = { rip: '192.0.2.7', lip: '192.0.2.1' };
  assert.deepEqual([imap.login.cap, imap.sessions.cap, imap.userip(conn)], [100, 1024, 10]);
  assert.deepEqual([sieve.login.cap, sieve.sessions.cap, sieve.userip(conn)], [100, 100, 10]);
  assert.equal(imap.login.warning, 'service(imap-login): process_limit (100) reached, client connections are being dropped');
  assert.equal(sieve.sessions.warning, 'service(managesieve): process_limit (100) reached, client connections are being dropped');
});

test('high-performance login mode, default_* limits, protocol and remote filters, warning wording', async () => {
  const c = await parseConfigText(`default_client_limit = 500
default_process_limit = 20
mail_max_userip_connections = 3
protocol sieve {
  mail_max_userip_connections = 0
}
remote 10.0.0.0/8 {
  protocol imap {
    mail_max_userip_connections = 50
  }
}
service imap-login {
  service_count = 0
  process_min_avail = 4
}
service imap {
  process_limit = 1
}
service managesieve-login {
  client_limit = 7
  process_limit = 1
  service_count = 0
}
`);
  const imap = protocolLimits(c, 'imap');
  const sieve = protocolLimits(c, 'sieve');
  const conn = { rip: '192.0.2.7', lip: '192.0.2.1' };
  assert.deepEqual([imap.login.cap, imap.sessions.cap, imap.userip(conn)], [500 * 20, 1, 3]);
  assert.deepEqual([sieve.login.cap, sieve.sessions.cap, sieve.userip(conn)], [7, 20, 0]);
  // the login process reads its settings per connection: remote filters apply
  assert.equal(imap.userip({ rip: '10.1.2.3', lip: '192.0.2.1' }), 50);
  assert.equal(imap.sessions.warning, 'service(imap): client_limit/service_count (1) reached, client connections are being dropped');
  assert.equal(sieve.login.warning, 'service(managesieve-login): client_limit (7) reached, client connections are being dropped');
});
