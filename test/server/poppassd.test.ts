/**
 * The poppassd service (src/server/poppassd.ts) with a stand-in for the
 * change itself: the exact line exchange Roundcube's poppassd driver
 * expects, the passwords handed to the change and never to the log, the
 * auth penalty after a wrong old password (per client address and user),
 * refusals carried back as `500 text`, and the listen setting's forms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { parseConfigText } from '../helpers/config-text.js';
import { poppassdExchange } from '../helpers/poppassd-client.js';
import { PoppassdService, parsePoppassdListen, type ChangeRunner } from '../../src/server/poppassd.js';
import { Logger, setLogSink } from '../../src/log/logger.js';

async function service(run: ChangeRunner) {
  const config = await parseConfigText('auth_failure_delay = 0\n');
  const logged: string[] = [];
  setLogSink((l) => { logged.push(l); });
  const svc = new PoppassdService(config, run, new Logger('master'));
  await svc.listen({ host: '127.0.0.1', port: 0 });
  return { svc, logged, done: () => { svc.close(); setLogSink(null); } };
}

test('poppassd: the exchange of Roundcube\'s driver; the change gets user, old and new password; the log none of them', async (t) => {
  const calls: string[][] = [];
  const { svc, logged, done } = await service(async (u, o, n) => { calls.push([u, o, n]); return { code: 0, message: '' }; });
  t.after(done);
  const got = await poppassdExchange(svc.port, ['user ann@example.org', 'pass Old pw with spaces', 'newpass New-Pässword-2', 'quit']);
  assert.deepEqual(got, ['200 Sealmail poppassd ready, who are you?', '200 Your password please.', '200 Your new password please.', '200 Password changed, thank-you.', '200 Bye.']);
  assert.deepEqual(calls, [['ann@example.org', 'Old pw with spaces', 'New-Pässword-2']]);
  assert.ok(logged.some((l) => l.includes('poppassd(ann@example.org)<127.0.0.1>: password changed')), logged.join('\n'));
  assert.ok(!logged.join('\n').includes('Old pw') && !logged.join('\n').includes('New-P'), 'no password in the log');
});

test('poppassd: a wrong old password answers 500 and sets the penalty for that address and user only; a success clears it', async (t) => {
  let code = 77;
  const { svc, done } = await service(async () => ({ code, message: 'ann@example.org: the old password is wrong; nothing changed' }));
  t.after(done);
  const got = await poppassdExchange(svc.port, ['user ann@example.org', 'pass wrong', 'newpass x', 'quit']);
  assert.equal(got[3], '500 Old password is incorrect.');
  assert.ok(svc.penalty.delayBefore('127.0.0.1 ann@example.org') > 0, 'penalty for this client and user');
  assert.equal(svc.penalty.delayBefore('127.0.0.1 bob@example.org'), 0, 'other users of the same webmail are not slowed');
  code = 0;
  const ok = await poppassdExchange(svc.port, ['user ann@example.org', 'pass right', 'newpass x', 'quit']);
  assert.equal(ok[3], '200 Password changed, thank-you.');
  assert.equal(svc.penalty.delayBefore('127.0.0.1 ann@example.org'), 0);
});

test('poppassd: a refused new password comes back as 500 with the reason; other failures say nothing internal', async (t) => {
  let r = { code: 65, message: 'ann@example.org: the new password is too long for the passdb scheme BLF-CRYPT (it would keep only a prefix); nothing changed' };
  const { svc, done } = await service(async () => r);
  t.after(done);
  const got = await poppassdExchange(svc.port, ['user ann@example.org', 'pass a', 'newpass b', 'quit']);
  assert.equal(got[3], `500 ${r.message}`);
  r = { code: 75, message: 'passdb lookup failed (temporary): nothing changed' };
  const tf = await poppassdExchange(svc.port, ['user ann@example.org', 'pass a', 'newpass b', 'quit']);
  assert.equal(tf[3], '500 Password change failed, try again later.');
  assert.equal(svc.penalty.delayBefore('127.0.0.1 ann@example.org'), 0, 'no penalty for what is not a wrong password');
});

test('poppassd: commands out of order, unknown commands and an overlong line change nothing', async (t) => {
  let calls = 0;
  const { svc, done } = await service(async () => { calls++; return { code: 0, message: '' }; });
  t.after(done);
  const got = await poppassdExchange(svc.port, ['newpass x', 'pass x', 'user', 'frob', 'quit']);
  assert.deepEqual(got.slice(1), ['500 Username and old password first.', '500 Username first.', '500 Username required.', '500 Unknown command.', '200 Bye.']);
  const s = connect(svc.port, '127.0.0.1');
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { text += d; });
  await new Promise<void>((r) => s.once('data', () => { s.write('x'.repeat(10_000)); r(); }));
  await new Promise((r) => s.on('close', r));
  assert.match(text, /500 Line too long\./);
  assert.equal(calls, 0);
});

test('sealmail_poppassd_listen: host:port, [v6]:port, host alone (port 106), a unix socket path; anything else is an error', () => {
  assert.deepEqual(parsePoppassdListen('127.0.0.1:1106'), { host: '127.0.0.1', port: 1106 });
  assert.deepEqual(parsePoppassdListen('[::1]:1106'), { host: '::1', port: 1106 });
  assert.deepEqual(parsePoppassdListen('localhost'), { host: 'localhost', port: 106 });
  assert.deepEqual(parsePoppassdListen('/run/dovecot/poppassd'), { path: '/run/dovecot/poppassd' });
  assert.throws(() => parsePoppassdListen('127.0.0.1:99999'), /bad port/);
  assert.throws(() => parsePoppassdListen('a b'), /expected host:port/);
});

test('poppassd: two changes for the same user at once run one after the other', async (t) => {
  let active = 0;
  let overlapped = false;
  const { svc, done } = await service(async () => {
    active++;
    if (active > 1) overlapped = true;
    await new Promise((r) => setTimeout(r, 200));
    active--;
    return { code: 0, message: '' };
  });
  t.after(done);
  const one = ['user ann@example.org', 'pass a', 'newpass b', 'quit'];
  const [a, b] = await Promise.all([poppassdExchange(svc.port, [...one]), poppassdExchange(svc.port, [...one])]);
  assert.equal(a[3], '200 Password changed, thank-you.');
  assert.equal(b[3], '200 Password changed, thank-you.');
  assert.equal(overlapped, false);
});
