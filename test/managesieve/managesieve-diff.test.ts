/**
 * ManageSieve differential test: the same client transcript (AUTHENTICATE
 * PLAIN, PUTSCRIPT good and broken, CHECKSCRIPT, SETACTIVE, LISTSCRIPTS,
 * GETSCRIPT, HAVESPACE, RENAMESCRIPT, DELETESCRIPT of the active script,
 * deactivation, bad names, unknown commands) against the real Pigeonhole
 * managesieved of a private Dovecot and against Sealmail's server; replies
 * must be identical, the SIEVE extension list and NOTIFY included (the
 * SIEVE lists compared over the extensions Sealmail implements, in
 * Pigeonhole's order; see sieveLine). The on-disk layout must be Pigeonhole's.
 * Then the E2E: a script stored and activated over ManageSieve is what
 * delivery runs.
 * A second transcript pair: SASL LOGIN, UNAUTHENTICATE, the BYEs after too
 * many invalid commands before and after login, and the per-IP penalty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';
import { readlinkSync, readFileSync, writeFileSync, mkdirSync, chmodSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../helpers/dovecot.js';
import { tempDir } from '../helpers/tmp.js';
import { parseConfigText } from '../helpers/config-text.js';
import { openListeners, closeListeners } from '../../src/server/listeners.js';
import { ManageSieveService, managesieveListenerSpecs } from '../../src/server/managesieve-service.js';
import { runSieveForDelivery } from '../../src/sieve/deliver.js';
import { simpleTlsMaterial } from '../../src/server/tls-settings.js';
import { SUPPORTED_EXTENSIONS } from '../../src/sieve/compile.js';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Send each step, wait for its complete reply (a line starting OK/NO/BYE or a "" continuation). */
async function converse(port: number, steps: string[], toEnd = false): Promise<string[]> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  let waiter: (() => void) | null = null;
  let closed = false;
  sock.on('close', () => { closed = true; waiter?.(); });
  sock.on('error', () => undefined);
  sock.on('data', (d) => { buf += d.toString('utf8'); if (process.env.MS_DEBUG) process.stderr.write(`[${port}] ${JSON.stringify(d.toString())}\n`); waiter?.(); });
  // Complete when a line (outside literals) starting with OK/NO/BYE has ended, or on a "" continuation.
  const complete = (): boolean => {
    if (/^"[A-Za-z0-9+/=]*"\r\n$/.test(buf)) return true; // a SASL challenge ("" for PLAIN, base64 for LOGIN)
    const b = Buffer.from(buf);
    let i = 0;
    while (i < b.length) {
      const nl = b.indexOf('\r\n', i);
      if (nl < 0) return false;
      const line = b.subarray(i, nl).toString();
      const lit = /\{(\d+)\}$/.exec(line);
      i = nl + 2;
      if (lit) { i += Number(lit[1]); const e = b.indexOf('\r\n', i); if (e < 0) return false; i = e + 2; if (/^(OK|NO|BYE)\b/.test(line)) return i === b.length; continue; }
      if (/^(OK|NO|BYE)\b/.test(line)) return i === b.length;
    }
    return false;
  };
  const next = async (): Promise<string> => {
    // bounded: a reply that never completes fails the comparison instead of hanging the run
    for (let i = 0; i < 400 && !complete(); i++) await new Promise<void>((r) => { waiter = r; setTimeout(r, 50); });
    const out = buf; buf = ''; return out;
  };
  const out = [await next()];
  for (const s of steps) {
    const i = s.indexOf('\n');
    // "{#+}" → a literal holding the rest of the step, sent byte for byte
    const line = i < 0 ? s + '\r\n' : s.slice(0, i).replace('{#+}', `{${Buffer.byteLength(s.slice(i + 1))}+}`) + '\r\n' + s.slice(i + 1) + '\r\n';
    sock.write(line);
    out.push(await next());
  }
  // a BYE written after the last reply (managesieved's NO then BYE) arrives a moment later: read up to the
  // end of the connection, which a LOGOUT brings about where the server keeps it open (its reply cut off)
  if (toEnd) {
    sock.write('LOGOUT\r\n');
    for (const end = Date.now() + 20_000; !closed && Date.now() < end;) await new Promise<void>((r) => { waiter = r; setTimeout(r, 200); });
    out[out.length - 1] += buf.replace(/OK "Logout completed\."\r\n$/, '');
  }
  sock.destroy();
  return out;
}

const PLAIN = Buffer.from('\0john@example.org\0pass').toString('base64');
const SPAM = 'require "fileinto";\nif header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; }\n';
const STEPS = [
  'LISTSCRIPTS',
  'AUTHENTICATE "FOO"',
  `AUTHENTICATE "PLAIN" "${Buffer.from('\0john@example.org\0wrong').toString('base64')}"`,
  `AUTHENTICATE "PLAIN" "${PLAIN}"`,
  'LISTSCRIPTS',
  `PUTSCRIPT "spam" {#+}\n${SPAM}`,
  'PUTSCRIPT "bad" {#+}\nfoo bar;\n',
  'CHECKSCRIPT {#+}\nif true { keep }\n',
  'CHECKSCRIPT {#+}\nrequire "fileinto";\nfileinto "x";\n',
  'SETACTIVE "spam"',
  'LISTSCRIPTS',
  'PUTSCRIPT "b" {#+}\nkeep;\n',
  'GETSCRIPT "spam"',
  'GETSCRIPT "nope"',
  'GETSCRIPT',
  'HAVESPACE "x" 100',
  'RENAMESCRIPT "b" "spam"',
  'DELETESCRIPT "spam"',
  'SETACTIVE "zz"',
  'PUTSCRIPT "a/b" {#+}\nkeep;\n',
  'FOO',
  'NOOP',
  'NOOP "tag"',
  'CAPABILITY',
  'RENAMESCRIPT "spam" "s2"',
  'SETACTIVE ""',
  'SETACTIVE ""',
  'DELETESCRIPT "s2"',
  'LOGOUT',
];

/**
 * Extensions Pigeonhole announces that Sealmail does not implement yet: left
 * out of both SIEVE lists, and the only ones allowed to be missing from
 * Sealmail's. None are left (environment was the last), so the lines must be equal.
 */
const NOT_YET: string[] = [];
/** The SIEVE capability line over the extensions both implement; order and all others must agree. */
function sieveLine(r: string): string {
  return r.replace(/^"SIEVE" "(.*)"\r\n/m, (_m, list: string) => `"SIEVE" "${list.split(' ').filter((x) => !NOT_YET.includes(x)).join(' ')}"\r\n`);
}

function normalize(replies: string[]): string[] {
  return replies.map((r) => sieveLine(r)
    .replace(/^"SASL" .*\r\n/m, '"SASL" <mechs>\r\n'));
}

/** Sealmail's ManageSieve on a free port, configured like the oracle (`extra`: more global settings). */
async function startSealmail(t: import('node:test').TestContext, extra: string, pluginExtra = '') {
  const dir = tempDir(t, 'managesieve');
  chmodSync(dir, 0o755);
  const { uid, gid } = mailIds();
  mkdirSync(join(dir, 'home'));
  if (process.getuid?.() === 0) chownSync(join(dir, 'home'), uid, gid);
  const sPort = await freePort();
  const config = await parseConfigText(`protocols = sieve
listen = 127.0.0.1
ssl = no
login_greeting = Dovecot (Debian) ready.
${extra}passdb {
  driver = static
  args = password=pass
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/home/%u
}
service managesieve-login {
  inet_listener sieve {
    port = ${sPort}
  }
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  ${pluginExtra}}
`);
  const svc = new ManageSieveService(config, null);
  const open = await openListeners(managesieveListenerSpecs(config), null, (s, spec) => svc.accept(s, spec));
  t.after(async () => { await closeListeners(open); await svc.close(); });
  return { dir, sPort, config };
}

test('ManageSieve replies match Pigeonhole managesieved; scripts stored the Pigeonhole way; delivery runs the active one', async (t) => {
  const dPort = await freePort();
  const dv = setupDovecot(t, {
    start: true, protocols: 'sieve',
    extraConf: `service managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n`,
  });
  if (!dv) return;
  const oracle = await converse(dPort, STEPS);

  const { dir, sPort, config } = await startSealmail(t, '');
  const ours = await converse(sPort, STEPS);

  const o = normalize(oracle), u = normalize(ours);
  for (let i = 0; i < o.length; i++) assert.equal(u[i], o[i], `step ${i} (${i ? STEPS[i - 1].split('\n')[0] : 'greeting'})`);
  assert.ok(oracle[0].includes('"NOTIFY"') && oracle.includes('OK "Logged in."\r\n') && oracle.includes('NO "Authentication failed."\r\n'), 'oracle transcript looks real');

  // The same layout on disk as Pigeonhole: the Junk script after the steps was renamed to s2
  // then deleted; redo a store + activate and compare the link.
  const steps2 = [`AUTHENTICATE "PLAIN" "${PLAIN}"`, `PUTSCRIPT "spam" {#+}\n${SPAM}`, 'SETACTIVE "spam"', 'LOGOUT'];
  const o2 = await converse(dPort, steps2);
  const u2 = await converse(sPort, steps2);
  assert.deepEqual(normalize(u2), normalize(o2));
  const dHome = dv.home('john@example.org');
  const sHome = join(dir, 'home', 'john@example.org');
  assert.equal(readlinkSync(join(sHome, '.dovecot.sieve')), readlinkSync(join(dHome, '.dovecot.sieve')));
  assert.equal(readFileSync(join(sHome, 'sieve', 'spam.sieve'), 'utf8'), readFileSync(join(dHome, 'sieve', 'spam.sieve'), 'utf8'));

  // E2E: delivery uses what ManageSieve activated.
  const msg = Buffer.from('From: x@bad.example\r\nTo: john@example.org\r\nX-Spam-Flag: YES\r\n\r\nx\r\n');
  const out = await runSieveForDelivery(config, { username: 'john@example.org', home: sHome, fields: [] }, msg, { from: 'x@bad.example', to: 'john@example.org' });
  assert.deepEqual(out.actions.map((a) => [a.type, a.mailbox]), [['fileinto', 'Junk']]);
});

/** Greeting, STARTTLS, the re-issued capabilities, CAPABILITY and an AUTHENTICATE inside TLS. */
async function tlsTranscript(port: number): Promise<string> {
  const sock = net.connect(port, '127.0.0.1');
  let out = '';
  const until = async (re: RegExp) => { for (let i = 0; i < 300 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 20)); };
  sock.on('data', (d) => { out += d.toString(); });
  await until(/^OK .*\r\n$/m);
  sock.write('STARTTLS\r\n');
  await until(/Begin TLS negotiation now\."\r\n$/);
  sock.removeAllListeners('data');
  const t = tls.connect({ socket: sock, rejectUnauthorized: false });
  t.on('data', (d) => { out += '[tls]' + d.toString(); });
  await new Promise<void>((r, j) => { t.once('secureConnect', () => r()); t.once('error', j); });
  await until(/TLS negotiation successful\."\r\n$/);
  t.write('STARTTLS\r\n');
  await until(/STARTTLS.*\r\n$/);
  t.write(`AUTHENTICATE "PLAIN" "${PLAIN}"\r\nCAPABILITY\r\n`);
  await until(/Capability completed\."\r\n$/);
  t.destroy();
  return out.replace(/\[tls\]/g, '\n[tls]');
}

test('STARTTLS: same replies as managesieved (capabilities re-issued, no second STARTTLS)', async (t) => {
  const { certPem, keyPem } = makeSelfSignedCert('localhost');
  const dir = tempDir(t, 'managesieve-tls');
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'cert.pem'), certPem, { mode: 0o644 });
  writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o644 });
  const dPort = await freePort();
  const dv = setupDovecot(t, {
    start: true, protocols: 'sieve',
    extraConf: `ssl = yes\nssl_cert = <${dir}/cert.pem\nssl_key = <${dir}/key.pem\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\n`,
  });
  if (!dv) return;
  const oracle = await tlsTranscript(dPort);
  const { uid, gid } = mailIds();
  const sPort = await freePort();
  const config = await parseConfigText(`protocols = sieve\nlisten = 127.0.0.1\nlogin_greeting = Dovecot (Debian) ready.\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=${uid} gid=${gid} home=${dir}/%u\n}\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sPort}\n  }\n}\n`);
  const material = simpleTlsMaterial(certPem, keyPem);
  const svc = new ManageSieveService(config, material);
  const open = await openListeners(managesieveListenerSpecs(config), material, (s, spec) => svc.accept(s, spec));
  t.after(async () => { await closeListeners(open); await svc.close(); });
  const ours = await tlsTranscript(sPort);
  const norm = (s: string) => s.replace(/\n\[tls\]/g, '').split(/(?<=\r\n)/).map(sieveLine).join('');
  assert.ok(oracle.includes('[tls]') && oracle.includes('TLS negotiation successful') && oracle.includes('Logged in'), oracle);
  assert.equal(norm(ours), norm(oracle));
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
/**
 * Before login: SASL LOGIN aborted, with bad base64 (in a response and in
 * the initial response), a wrong password, an unsupported mechanism, then
 * the invalid commands managesieve-login counts (not AUTHENTICATE "X" nor
 * STARTTLS without TLS): the third is a BYE.
 */
const PRELOGIN = [
  'AUTHENTICATE "LOGIN"', '"*"',
  'AUTHENTICATE "LOGIN"', `"${b64('x')}"`, '"!!"',
  'AUTHENTICATE "CRAM-MD5"',
  'AUTHENTICATE "LOGIN" "!!"',
  'AUTHENTICATE "login"', `"${b64('john@example.org')}"`, `"${b64('wrong')}"`,
  'AUTHENTICATE',
  'STARTTLS',
  'CAPABILITY',
  'LISTSCRIPTS "x" "y"',
  'FOO',
];
/**
 * LOGIN with the initial response and the password as a literal (waiting out
 * the per-IP penalty of the failure above), UNAUTHENTICATE (unknown to
 * managesieved 0.5), then invalid commands: an accepted one resets the count,
 * the twentieth in a row is answered and followed by a BYE.
 */
const POSTLOGIN = [
  `AUTHENTICATE "LOGIN" "${b64('john@example.org')}"`, `{#+}\n${b64('pass')}`,
  'UNAUTHENTICATE', 'GETSCRIPT', 'NOOP',
  ...Array.from({ length: 20 }, (_, i) => `FOO${i}`),
];

test('SASL LOGIN, the invalid-command BYEs and the per-IP auth penalty match managesieved', async (t) => {
  const dPort = await freePort();
  const dv = setupDovecot(t, {
    start: true, protocols: 'sieve',
    extraConf: `auth_mechanisms = plain login\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n`,
  });
  if (!dv) return;
  const { sPort } = await startSealmail(t, 'auth_mechanisms = plain login\n');
  const run = async (port: number) => {
    const pre = await converse(port, PRELOGIN, true);
    const t0 = Date.now();
    const post = await converse(port, POSTLOGIN, true);
    return { pre, post, loginMs: Date.now() - t0 };
  };
  const oracle = await run(dPort);
  const ours = await run(sPort);
  const norm = (r: string[]) => r.map(sieveLine);
  for (const [name, steps] of [['pre', PRELOGIN], ['post', POSTLOGIN]] as const) {
    const o = norm(oracle[name]), u = norm(ours[name]);
    assert.equal(u.length, o.length);
    for (let i = 0; i < o.length; i++) assert.equal(u[i], o[i], `${name} step ${i} (${i ? steps[i - 1].split('\n')[0] : 'greeting'})`);
  }
  assert.ok(oracle.pre[0].includes('"SASL" "PLAIN LOGIN"') && oracle.pre.at(-1)!.startsWith('BYE') && oracle.post[2] === 'OK "Logged in."\r\n' && /BYE/.test(oracle.post.at(-1)!), 'oracle transcript looks real');
  // both made the client that just failed wait (the anvil penalty, 2 s) before its next login
  assert.ok(oracle.loginMs >= 1500, `oracle login took ${oracle.loginMs} ms`);
  assert.ok(ours.loginMs >= 1500, `our login took ${ours.loginMs} ms`);
});

/**
 * The SIEVE and NOTIFY capability lines follow sieve_extensions as
 * managesieved's do: the default set (enotify with "NOTIFY" "mailto",
 * duplicate), the RFC 5235 tests and the deprecated vnd.dovecot.duplicate
 * switched on, enotify switched off (no NOTIFY line), a replacing list;
 * before login (managesieve-login) and after (managesieved).
 */
test('SIEVE and NOTIFY capabilities follow sieve_extensions as managesieved', async (t) => {
  const settings = ['', '  sieve_extensions = +spamtest +spamtestplus +virustest +vnd.dovecot.duplicate\n', '  sieve_extensions = -enotify -duplicate\n', '  sieve_extensions = fileinto enotify spamtest\n', '  sieve_extensions = +editheader\n'];
  for (const ext of settings) {
    const dPort = await freePort();
    const dv = setupDovecot(t, {
      start: true, protocols: 'sieve',
      extraConf: `service managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n${ext}}\n`,
    });
    if (!dv) return;
    const steps = ['CAPABILITY', `AUTHENTICATE "PLAIN" "${PLAIN}"`, 'CAPABILITY', 'LOGOUT'];
    const oracle = await converse(dPort, steps);
    const { sPort } = await startSealmail(t, ext ? `plugin {\n${ext}}\n` : '');
    const ours = await converse(sPort, steps);
    for (const i of [1, 3]) {
      assert.equal(sieveLine(ours[i]).replace(/^"SASL" .*\r\n/m, ''), sieveLine(oracle[i]).replace(/^"SASL" .*\r\n/m, ''), `${ext.trim() || 'defaults'}: CAPABILITY ${i === 1 ? 'before' : 'after'} login`);
      const list = (r: string) => /^"SIEVE" "(.*)"\r\n/m.exec(r)![1].split(' ');
      const missing = list(oracle[i]).filter((x) => !list(ours[i]).includes(x));
      assert.deepEqual(missing.filter((x) => !NOT_YET.includes(x)), [], 'only the extensions not done yet are missing');
    }
    assert.equal(/"NOTIFY" "mailto"\r\n/.test(ours[1]), !ext.includes('-enotify'), `${ext.trim() || 'defaults'}: NOTIFY line`);
  }
});

// Script quotas, sieve_max_script_size, managesieve_max_compile_errors and managesieve_max_line_length, small enough to reach.
const LIMITS_CONF = 'sieve_quota_max_scripts = 2\n  sieve_quota_max_storage = 150\n  sieve_max_script_size = 100\n';
const LIMIT_STEPS = [
  `AUTHENTICATE "PLAIN" "${PLAIN}"`,
  'HAVESPACE "a" 101',
  'HAVESPACE "a" 100',
  `PUTSCRIPT "a" {#+}\n${'#'.repeat(80)}\nkeep;\n`,
  'PUTSCRIPT "a" {#+}\nkeep;\n',
  `PUTSCRIPT "b" {#+}\n${'#'.repeat(90)}\n`,
  'PUTSCRIPT "c" {#+}\nkeep;\n',
  'HAVESPACE "c" 1',
  'HAVESPACE "a" 100',
  'HAVESPACE "a" 99',
  `PUTSCRIPT "a" "${'#'.repeat(101)}"`,
  `PUTSCRIPT "a" "keep; /*${'x'.repeat(89)}*/"`,
  `CHECKSCRIPT {#+}\n${'#'.repeat(120)}\n`,
  'DELETESCRIPT "a"',
  `PUTSCRIPT "c" {#+}\n${'#'.repeat(99)}\n`,
  `PUTSCRIPT "c" {#+}\n${'#'.repeat(90)}\n`,
  'PUTSCRIPT "d" {#+}\nfoo; bar; baz; qux; quux; corge; grault;\n',
  'DELETESCRIPT "b"',
  'DELETESCRIPT "c"',
  'PUTSCRIPT "d" {#+}\nfoo; bar; baz; qux; quux; corge; grault;\n',
  'CHECKSCRIPT {#+}\nfoo; bar; baz;\n',
  `NOOP "${'x'.repeat(300)}"`,
  `NOOP ${'x'.repeat(300)}`,
  'NOOP',
  `NOOP ${Array.from({ length: 60 }, () => '"abc"').join(' ')}`,
  `GETSCRIPT {#+}\n${'z'.repeat(200)}`,
  // over the line budget: the parser's fatal error, BYE (last: the connection ends)
  `GETSCRIPT {#+}\n${'z'.repeat(250)}`,
];

test('script quotas, sieve_max_script_size, managesieve_max_compile_errors and managesieve_max_line_length as managesieved', async (t) => {
  const dPort = await freePort();
  const limits = `managesieve_max_compile_errors = 2\nmanagesieve_max_line_length = 256\n`;
  const dv = setupDovecot(t, {
    start: true, protocols: 'sieve',
    extraConf: `${limits}service managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n  ${LIMITS_CONF}}\n`,
  });
  if (!dv) return;
  const oracle = await converse(dPort, LIMIT_STEPS, true);
  const { sPort } = await startSealmail(t, limits, LIMITS_CONF);
  const ours = await converse(sPort, LIMIT_STEPS, true);
  if (process.env.MS_DEBUG) { console.log(JSON.stringify(oracle, null, 1)); console.log(JSON.stringify(ours, null, 1)); }
  const o = normalize(oracle), u = normalize(ours);
  for (let i = 0; i < o.length; i++) assert.equal(u[i], o[i], `step ${i} (${i ? LIMIT_STEPS[i - 1].split('\n')[0].slice(0, 60) : 'greeting'})`);
  // the SIEVE line: managesieved's, in its order, less what Sealmail does not implement yet
  const sieveLine = (greeting: string) => /^"SIEVE" "(.*)"\r$/m.exec(greeting)![1].split(' ');
  assert.deepEqual(sieveLine(ours[0]), sieveLine(oracle[0]).filter((e) => SUPPORTED_EXTENSIONS.includes(e)));
  for (const e of ['mime', 'foreverypart', 'extracttext']) assert.ok(sieveLine(ours[0]).includes(e), e);
  assert.ok(oracle.some((r) => r.includes('QUOTA/MAXSCRIPTS')) && oracle.some((r) => r.includes('QUOTA/MAXSTORAGE')) && oracle.some((r) => r.includes('QUOTA/MAXSIZE')), 'oracle transcript looks real');
});

test('before login a line over managesieve-login\'s buffer ends the connection as managesieved does', async (t) => {
  const dPort = await freePort();
  const dv = setupDovecot(t, {
    start: true, protocols: 'sieve',
    extraConf: `service managesieve-login {\n  inet_listener sieve {\n    port = ${dPort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n`,
  });
  if (!dv) return;
  const steps = [`NOOP "${'x'.repeat(1000)}"`, `NOOP ${Array.from({ length: 1000 }, () => '"abcdefg"').join(' ')}`, `NOOP ${Array.from({ length: 500 }, () => '"abcdefg"').join(' ')}`, `NOOP "${'x'.repeat(1100)}"`];
  const oracle = await converse(dPort, steps, true);
  const { sPort } = await startSealmail(t, '');
  const ours = await converse(sPort, steps, true);
  if (process.env.MS_DEBUG) { console.log(JSON.stringify(oracle.map((x) => x.slice(0, 300)), null, 1)); console.log(JSON.stringify(ours.map((x) => x.slice(0, 300)), null, 1)); }
  const norm = (r: string[]) => r.map((x) => x.replace(/^"SIEVE" .*\r\n/m, '"SIEVE" <extensions>\r\n').replace(/^"NOTIFY" .*\r\n/m, ''));
  assert.deepEqual(norm(ours), norm(oracle));
});
