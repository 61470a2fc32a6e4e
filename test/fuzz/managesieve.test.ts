/**
 * ManageSieve fuzz (RFC 5804 as Pigeonhole speaks it): random bytes and
 * mutated dialogues — STARTTLS with a real TLS layer behind it (fed garbage
 * instead of a ClientHello), AUTHENTICATE PLAIN/LOGIN with bad base64,
 * quoted strings, literals and huge literal announcements, and the script
 * commands after a login — through real ManageSieveSession objects, then
 * over real connections to a real server, which must still answer every
 * protocol afterwards. See driver.ts for what a case asserts.
 */
import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { ManageSieveSession } from '../../src/managesieve/session.js';
import { serverStartTls } from '../../src/server/starttls.js';
import { ServerTlsContext } from '../../src/server/tls-context.js';
import { makeSelfSignedCert } from '../../src/server/selfsigned.js';
import { memTempDir, rnd } from './mem-socket.js';
import { CASES, fuzzSessions, fuzzSockets, type FuzzTarget } from './driver.js';
import { allAnswer, startLiveServer } from './live-server.js';
import { simpleTlsMaterial } from '../../src/server/tls-settings.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const lit = (s: string) => `{${Buffer.byteLength(s)}${rnd(2) ? '+' : ''}}\r\n${s}`;
const SCRIPT = 'require ["fileinto", "regex"];\r\nif header :regex "subject" "^(a+)+$" { fileinto "Junk"; }\r\n';

const PRELOGIN = [
  () => 'CAPABILITY', () => 'NOOP "tag"', () => 'NOOP', () => 'LOGOUT', () => 'STARTTLS', () => 'FOO bar',
  () => `AUTHENTICATE "PLAIN" "${b64('\0u@x\0pass')}"`,
  () => `AUTHENTICATE "PLAIN" "${b64('\0u@x\0wrong')}"`,
  () => `AUTHENTICATE "PLAIN"\r\n"${b64('\0u@x\0pass')}"`,
  () => `AUTHENTICATE "PLAIN" ${lit(b64('u@x\0u@x\0pass'))}`,
  () => `AUTHENTICATE "LOGIN"\r\n"${b64('u@x')}"\r\n${lit(b64('pass'))}`,
  () => 'AUTHENTICATE "PLAIN" "!!not base64=="', () => 'AUTHENTICATE "PLAIN"\r\n"*"', () => 'AUTHENTICATE "LOGIN"\r\n"x=y"',
  () => 'AUTHENTICATE "PLAIN" {4294967295+}\r\n', () => 'AUTHENTICATE "PLAIN" {99999999999}\r\n', () => 'AUTHENTICATE "GSSAPI"',
];
const POSTLOGIN = [
  () => 'LISTSCRIPTS', () => `PUTSCRIPT "s${rnd(3)}" ${lit(SCRIPT)}`, () => `PUTSCRIPT "bad" ${lit('if true {')}`, () => `CHECKSCRIPT ${lit(SCRIPT)}`,
  () => `GETSCRIPT "s${rnd(3)}"`, () => `SETACTIVE "s${rnd(3)}"`, () => 'SETACTIVE ""', () => `DELETESCRIPT "s${rnd(3)}"`,
  () => `RENAMESCRIPT "s${rnd(3)}" "s${rnd(3)}"`, () => 'HAVESPACE "s" 100', () => 'HAVESPACE "../x" 99999999999999999999',
  () => 'PUTSCRIPT "x" {8388609+}\r\n', () => 'UNAUTHENTICATE', () => 'NOOP "x"', () => 'GETSCRIPT "a/b"', () => 'PUTSCRIPT "\u00e9\u0000" ""',
];

test(`ManageSieve fuzz: ${CASES} cases in memory, then over real sockets`, { timeout: 900_000 }, async (t) => {
  const dir = memTempDir(t, 'fuzz-sieve');
  mkdirSync(join(dir, 'home'));
  const config = await parseConfigText(`auth_mechanisms = plain login\nauth_failure_delay = 0\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = home=${dir}/home/%u\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n`);
  const auth = new AuthEngine(config, 'sieve');
  t.after(() => auth.close());
  const { certPem, keyPem } = makeSelfSignedCert('localhost');
  const tls = new ServerTlsContext(simpleTlsMaterial(certPem, keyPem));

  const target: FuzzTarget = {
    start: (sock) => new ManageSieveSession(sock, {
      config, auth, resolveHome: (u) => join(dir, 'home', u), tlsAvailable: true, secured: false, remoteIp: '127.0.0.1', localIp: '127.0.0.1',
      startTls: () => serverStartTls(sock, () => tls.current()),
    }).start(),
    dialogue: () => {
      const lines = [PRELOGIN[rnd(PRELOGIN.length)]()];
      // one login in ten is a user whose home path is over the file system's name limit
      if (rnd(2)) { lines[0] = `AUTHENTICATE "PLAIN" "${b64(`\0${rnd(10) ? 'u' : 'u'.repeat(300)}@x\0pass`)}"`; for (let i = 0, n = 1 + rnd(3); i < n; i++) lines.push(POSTLOGIN[rnd(POSTLOGIN.length)]()); }
      else if (rnd(3) === 0) lines.push(PRELOGIN[rnd(PRELOGIN.length)]());
      return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
    },
    specials: ['"', '\\', '{', '}', '+}', '\r\n', '\n', '\0', ' ', '*', '=', '{0}\r\n', '\x16\x03\x01'],
    probe: { send: 'NOOP\r\n', expect: 'OK "NOOP Completed"' },
  };
  await fuzzSessions(t, target);

  const live = await startLiveServer(t);
  await fuzzSockets(t, target, { port: live.sievePort });
  await allAnswer(live);
});
