/**
 * ManageSieve bad input and the paths the differential transcript does not
 * cover: AUTHENTICATE with a continuation, garbage lines (answered, session
 * goes on), an oversized script literal (refused unread, nothing
 * stored), a broken script never replacing a good one, names with '/'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { mkdirSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { ManageSieveSession, parseCommand } from '../../src/managesieve/session.js';

async function session(t: import('node:test').TestContext, remoteIp?: string, userdbExtra = '') {
  const dir = tempDir(t, 'ms-session');
  mkdirSync(join(dir, 'home'));
  const config = await parseConfigText(`passdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = home=${dir}/home/%u${userdbExtra}\n}\nauth_failure_delay = 0\n`);
  const auth = new AuthEngine(config, 'sieve');
  t.after(() => auth.close());
  const input = new PassThrough();
  const output = new PassThrough();
  const duplex = Object.assign(input, { write: output.write.bind(output), end: output.end.bind(output) }) as unknown as import('node:stream').Duplex;
  let got = '';
  output.on('data', (d: Buffer) => { got += d.toString(); });
  const s = new ManageSieveSession(duplex, { config, auth, resolveHome: (_u, f) => f.find(([k]) => k === 'home')?.[1], tlsAvailable: false, secured: false, remoteIp, localIp: '192.0.2.1' });
  s.start();
  const send = async (data: string | Buffer, until: RegExp) => {
    got = '';
    input.emit('data', Buffer.from(data));
    for (let i = 0; i < 200 && !until.test(got); i++) await new Promise((r) => setTimeout(r, 10));
    return got;
  };
  return { dir, home: join(dir, 'home', 'u@example.org'), send, greeting: () => got };
}

test('AUTHENTICATE PLAIN with a continuation, then scripts', async (t) => {
  const s = await session(t);
  assert.equal(await s.send('AUTHENTICATE "PLAIN"\r\n', /""\r\n/), '""\r\n');
  const b64 = Buffer.from('\0u@example.org\0pass').toString('base64');
  assert.equal(await s.send(`"${b64}"\r\n`, /Logged in/), 'OK "Logged in."\r\n');
  assert.equal(await s.send('PUTSCRIPT "a" {6+}\r\nkeep;\n\r\n', /\r\n$/), 'OK "PUTSCRIPT completed."\r\n');
  assert.equal(readFileSync(join(s.home, 'sieve', 'a.sieve'), 'utf8'), 'keep;\n');
});

test('a wrong password and an aborted exchange fail cleanly', async (t) => {
  const s = await session(t);
  const bad = Buffer.from('\0u@example.org\0nope').toString('base64');
  assert.equal(await s.send(`AUTHENTICATE "PLAIN" "${bad}"\r\n`, /\r\n$/), 'NO "Authentication failed."\r\n');
  await s.send('AUTHENTICATE "PLAIN"\r\n', /""/);
  assert.equal(await s.send('"*"\r\n', /\r\n$/), 'NO "Authentication aborted by client."\r\n');
  assert.equal(await s.send('LISTSCRIPTS\r\n', /\r\n$/), 'NO "Error in MANAGESIEVE command received by server."\r\n');
});

test('garbage is answered and the session goes on; a broken script does not replace a good one', async (t) => {
  const s = await session(t);
  const b64 = Buffer.from('\0u@example.org\0pass').toString('base64');
  await s.send(`AUTHENTICATE "PLAIN" "${b64}"\r\n`, /Logged in/);
  assert.match(await s.send('"unterminated\r\n', /\r\n$/), /^NO "Error in MANAGESIEVE command/);
  assert.match(await s.send('{abc}\r\n', /\r\n$/), /^NO "Error in MANAGESIEVE command/);
  assert.equal(await s.send('PUTSCRIPT "a" {6+}\r\nkeep;\n\r\n', /\r\n$/), 'OK "PUTSCRIPT completed."\r\n');
  const r = await s.send('PUTSCRIPT "a" {9+}\r\nfoo bar;\n\r\n', /failed\.\r\n\r\n$/);
  assert.match(r, /^NO \{\d+\}\r\na: line 1: error: unknown command 'foo'/);
  assert.equal(readFileSync(join(s.home, 'sieve', 'a.sieve'), 'utf8'), 'keep;\n');
  assert.equal(await s.send('PUTSCRIPT "../x" {6+}\r\nkeep;\n\r\n', /\r\n$/), 'NO "Invalid Sieve script name `../x\'."\r\n');
  assert.ok(!existsSync(join(s.home, 'x.sieve')));
  assert.equal(await s.send('NOOP\r\n', /\r\n$/), 'OK "NOOP Completed"\r\n');
});

test('a script literal over sieve_max_script_size is refused unread and nothing is stored', async (t) => {
  const s = await session(t);
  const b64 = Buffer.from('\0u@example.org\0pass').toString('base64');
  await s.send(`AUTHENTICATE "PLAIN" "${b64}"\r\n`, /Logged in/);
  // managesieved: the quota answer before the data, which is then skipped (as the 'keep;' here)
  const r = await s.send('PUTSCRIPT "big" {999999999+}\r\nkeep;\r\n', /\r\n$/);
  assert.equal(r, 'NO (QUOTA/MAXSIZE) "Script is too large (max 1048576 bytes)."\r\n');
  assert.ok(!existsSync(join(s.home, 'sieve')) || readdirSync(join(s.home, 'sieve')).length === 0);
});

test('command parser: quoted strings with escapes, both literal forms, incomplete input', () => {
  const p = parseCommand(Buffer.from('PUTSCRIPT "a\\"b" {3}\r\nxyz\r\n'))!;
  assert.deepEqual(p.tokens.map((x) => x.v.toString()), ['PUTSCRIPT', 'a"b', 'xyz']);
  assert.equal(parseCommand(Buffer.from('PUTSCRIPT "a" {5+}\r\nxy')), null);
  assert.equal(parseCommand(Buffer.from('NOOP')), null);
  assert.throws(() => parseCommand(Buffer.from('NOOP "a\rb"\r\n')));
});

test('disable_plaintext_auth: no PLAIN for a remote client outside TLS', async (t) => {
  const s = await session(t, '198.51.100.7');
  // the greeting is written as the session starts: wait for it (bounded), never for a fixed time
  for (const end = Date.now() + 10_000; !/\r\nOK [^\r\n]*\r\n/.test(s.greeting()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
  assert.match(s.greeting(), /^"SASL" ""\r$/m);
  const b64 = Buffer.from('\0u@example.org\0pass').toString('base64');
  assert.equal(await s.send(`AUTHENTICATE "PLAIN" "${b64}"\r\n`, /\r\n$/), 'NO "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."\r\n');
});

test('LOGIN is refused unless auth_mechanisms enables it; the third invalid command before login is a BYE', async (t) => {
  const s = await session(t);
  assert.match(s.greeting(), /^"SASL" "PLAIN"\r\n/m);
  assert.equal(await s.send('AUTHENTICATE "LOGIN"\r\n', /\r\n$/), 'NO "Unsupported authentication mechanism."\r\n');
  assert.equal(await s.send('FOO\r\n', /\r\n$/), 'NO "Error in MANAGESIEVE command received by server."\r\n');
  assert.equal(await s.send('AUTHENTICATE\r\n', /\r\n$/), 'NO "Error in MANAGESIEVE command received by server."\r\n');
  assert.equal(await s.send('BAR\r\n', /\r\n$/), 'BYE "Too many invalid MANAGESIEVE commands."\r\n');
});

test('script quotas from userdb fields override the plugin settings (a per-user sieve_quota_max_scripts)', async (t) => {
  const s = await session(t, undefined, ' sieve_quota_max_scripts=1 sieve_max_script_size=20');
  const b64 = Buffer.from('\0u@example.org\0pass').toString('base64');
  await s.send(`AUTHENTICATE "PLAIN" "${b64}"\r\n`, /Logged in/);
  assert.equal(await s.send('PUTSCRIPT "a" {6+}\r\nkeep;\n\r\n', /\r\n$/), 'OK "PUTSCRIPT completed."\r\n');
  assert.equal(await s.send('PUTSCRIPT "a" {9+}\r\ndiscard;\n\r\n', /\r\n$/), 'OK "PUTSCRIPT completed."\r\n');
  assert.equal(await s.send('PUTSCRIPT "b" {6+}\r\nkeep;\n\r\n', /\r\n$/), 'NO (QUOTA/MAXSCRIPTS) "Script count quota exceeded (max 1 scripts)."\r\n');
  assert.equal(await s.send('HAVESPACE "a" 21\r\n', /\r\n$/), 'NO (QUOTA/MAXSIZE) "Script is too large (max 20 bytes)."\r\n');
  assert.equal(await s.send('HAVESPACE "a" 0\r\n', /\r\n$/), 'NO "Cannot upload empty script."\r\n');
  assert.ok(!existsSync(join(s.home, 'sieve', 'b.sieve')));
});
