/**
 * The auth engine on a real SQLite file: field rules, chains, the auth cache
 * (a changed row is seen only after auth_cache_ttl, a password-dependent
 * query never shares entries), the penalty rules, and no secret in any log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { AuthPenalty, failureDelayMs, penaltyIdent } from '../../src/auth/penalty.js';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { setLogSink } from '../../src/log/logger.js';
import { startDb } from '../helpers/databases.js';
import { tempDir } from '../helpers/tmp.js';

async function setup(t: import('node:test').TestContext, extraConf = '', query = "SELECT email AS user, password, '%w' AS userdb_mail_crypt_private_password FROM virtual_users WHERE email='%u'") {
  const dir = tempDir(t, 'engine');
  const db = await startDb('sqlite', dir);
  const hash = await hashPassword('SHA512-CRYPT', Buffer.from('Secret-1'));
  await db.exec(`INSERT INTO virtual_domains (name) VALUES ('example.org');
INSERT INTO virtual_users (domain_id, email, password) VALUES (1, 'ann@example.org', '${hash}');`);
  writeFileSync(join(dir, 'sql.conf.ext'), `driver = sqlite\nconnect = ${db.connect}\npassword_query = ${query}\nuser_query = SELECT '/var/vmail/%d/%n' AS home, 5000 AS uid, 5000 AS gid FROM virtual_users WHERE email='%u'\n`);
  writeFileSync(join(dir, 'dovecot.conf'), `passdb {\n  driver = sql\n  args = ${dir}/sql.conf.ext\n}\nuserdb {\n  driver = prefetch\n}\nuserdb {\n  driver = sql\n  args = ${dir}/sql.conf.ext\n}\n${extraConf}`);
  const engine = new AuthEngine(await loadConfig(join(dir, 'dovecot.conf')), 'imap');
  t.after(() => engine.close());
  return { engine, db };
}

test('login, prefetch of userdb_* fields, userdb chain, secrets never logged', async (t) => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  const { engine } = await setup(t, 'auth_verbose = yes\n');
  const ok = await engine.authenticate('Ann@Example.org', 'Secret-1', { service: 'imap', rip: '192.0.2.1' });
  assert.equal(ok.result, 'ok');
  assert.equal(ok.user, 'ann@example.org');
  assert.deepEqual(ok.userdbFields, [['mail_crypt_private_password', 'Secret-1']]);
  assert.ok(!ok.fields.some(([k]) => k.includes('password')));
  const bad = await engine.authenticate('ann@example.org', 'Secret-2', { service: 'imap', rip: '192.0.2.1' });
  assert.equal(bad.result, 'mismatch');
  const u = await engine.lookupUser('ann@example.org', { service: 'lmtp' });
  assert.equal(u.result, 'ok');
  assert.deepEqual(u.fields.find(([k]) => k === 'home'), ['home', '/var/vmail/example.org/ann']);
  assert.ok(lines.some((l) => l.includes('sql(ann@example.org,192.0.2.1): Password mismatch')));
  for (const l of lines) assert.ok(!/Secret-|\$6\$/.test(l), `secret in log: ${l}`);
});

test('auth_verbose and auth_verbose_passwords decide the passdb failure lines, as auth_request_log_login_failure', async (t) => {
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  // Dovecot's default: no line for a wrong password or an unknown user
  const quiet = (await setup(t)).engine;
  assert.equal((await quiet.authenticate('ann@example.org', 'Secret-2', { service: 'imap', rip: '192.0.2.1', session: 'AbCdEfGhIjKlMnOp' })).result, 'mismatch');
  assert.equal((await quiet.authenticate('nobody@example.org', 'x', { service: 'imap', rip: '192.0.2.1' })).result, 'unknown');
  assert.deepEqual(lines, []);
  // auth_verbose: driver(user,rip,<session>): the session id of the login process's request
  const verbose = (await setup(t, 'auth_verbose = yes\n')).engine;
  await verbose.authenticate('ann@example.org', 'Secret-2', { service: 'imap', rip: '192.0.2.1', session: 'AbCdEfGhIjKlMnOp' });
  await verbose.authenticate('nobody@example.org', 'x', { service: 'imap', rip: '192.0.2.1' });
  assert.deepEqual(lines.splice(0), ['auth: Info: sql(ann@example.org,192.0.2.1,<AbCdEfGhIjKlMnOp>): Password mismatch', 'auth: Info: sql(nobody@example.org,192.0.2.1): unknown user']);
  // auth_verbose_passwords logs even without auth_verbose: the password given (plain / yes), or its SHA1, cut to :N
  const plain = (await setup(t, 'auth_verbose_passwords = yes\n')).engine;
  await plain.authenticate('ann@example.org', 'Secret-2', { service: 'imap', rip: '192.0.2.1' });
  const sha = (await setup(t, 'auth_verbose_passwords = sha1:8\n')).engine;
  await sha.authenticate('ann@example.org', 'Secret-2', { service: 'imap', rip: '192.0.2.1' });
  assert.deepEqual(lines.splice(0), [
    'auth: Info: sql(ann@example.org,192.0.2.1): Password mismatch (given password: Secret-2)',
    'auth: Info: sql(ann@example.org,192.0.2.1): Password mismatch (SHA1 of given password: b7a37dfe)',
  ]);
});

test('auth cache: a changed row is seen only after the TTL; unknown users are cached negatively', async (t) => {
  const { engine, db } = await setup(t, 'auth_cache_size = 1M\nauth_cache_ttl = 1 hour\nauth_cache_negative_ttl = 1 hour\n', "SELECT email AS user, password FROM virtual_users WHERE email='%u'");
  assert.equal((await engine.authenticate('ann@example.org', 'Secret-1', { service: 'imap' })).result, 'ok');
  assert.equal((await engine.authenticate('bob@example.org', 'x', { service: 'imap' })).result, 'unknown');
  const newHash = await hashPassword('PLAIN', Buffer.from('Secret-NEW'));
  await db.exec(`UPDATE virtual_users SET password = '${newHash}'; INSERT INTO virtual_users (domain_id, email, password) VALUES (1, 'bob@example.org', '{PLAIN}x');`);
  assert.equal((await engine.authenticate('ann@example.org', 'Secret-1', { service: 'imap' })).result, 'ok', 'cached row');
  assert.equal((await engine.authenticate('bob@example.org', 'x', { service: 'imap' })).result, 'unknown', 'negative cache');
  engine.cache.flush();
  assert.equal((await engine.authenticate('ann@example.org', 'Secret-NEW', { service: 'imap' })).result, 'ok');
  assert.equal((await engine.authenticate('bob@example.org', 'x', { service: 'imap' })).result, 'ok');
});

test('auth cache with a %w query keys on the password', async (t) => {
  const { engine } = await setup(t, 'auth_cache_size = 1M\nauth_cache_ttl = 1 hour\n');
  const a = await engine.authenticate('ann@example.org', 'Secret-1', { service: 'imap' });
  const b = await engine.authenticate('ann@example.org', 'Wrong', { service: 'imap' });
  assert.equal(a.result, 'ok');
  assert.equal(b.result, 'mismatch');
  assert.deepEqual(b.userdbFields, [['mail_crypt_private_password', 'Wrong']]);
});

test('penalty doubles per failure from one IP up to 15 s, resets on success; nodelay', () => {
  const p = new AuthPenalty();
  assert.equal(p.delayBefore('192.0.2.9'), 0);
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) { p.failed('192.0.2.9'); seen.push(p.delayBefore('192.0.2.9')); }
  assert.deepEqual(seen, [2000, 4000, 8000, 15000, 15000]);
  assert.equal(p.delayBefore('198.51.100.1'), 0);
  p.succeeded('192.0.2.9');
  assert.equal(p.delayBefore('192.0.2.9'), 0);
  assert.equal(failureDelayMs(2000, false), 2000);
  assert.equal(failureDelayMs(2000, true), 0);
});

test('penalty groups IPv6 clients by /48 as auth-penalty.c does; IPv4 and IPv4-mapped by address', () => {
  assert.equal(penaltyIdent('2001:db8:1:2::5'), penaltyIdent('2001:db8:1:ffff:1:2:3:4'));
  assert.notEqual(penaltyIdent('2001:db8:1::5'), penaltyIdent('2001:db8:2::5'));
  assert.equal(penaltyIdent('::ffff:192.0.2.9'), '192.0.2.9');
  assert.equal(penaltyIdent('2001:db8:1::1.2.3.4'), penaltyIdent('2001:db8:1::'));
  assert.equal(penaltyIdent('fe80::1%eth0'), penaltyIdent('fe80::2'));
  const p = new AuthPenalty();
  p.failed('2001:db8:1:2::5');
  p.failed('2001:db8:1:3::7');
  // a new address in the same /48 starts with the penalty of the network, not clean
  assert.equal(p.delayBefore('2001:db8:1:99::1'), 4000);
  assert.equal(p.delayBefore('2001:db8:2::1'), 0);
  p.failed('::ffff:192.0.2.9');
  assert.equal(p.delayBefore('192.0.2.9'), 2000);
  // a success from any address of the /48 ends it (Dovecot's anvil key is the /48)
  p.succeeded('2001:db8:1::abcd');
  assert.equal(p.delayBefore('2001:db8:1:2::5'), 0);
  // replayed changes from another process land on the same key
  const q = new AuthPenalty();
  q.apply('failed', '2001:db8:1:2::5', Date.now());
  assert.equal(q.delayBefore('2001:db8:1:7::7'), 2000);
});
