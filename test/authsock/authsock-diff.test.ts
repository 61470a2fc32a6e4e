/**
 * Differential transcripts of Dovecot's auth client protocol (the
 * `private/auth` socket Postfix uses for SMTP AUTH, issue #7 item 1): the
 * same scripts against the real Dovecot 2.3 auth service and Sealmail,
 * compared after normalising only SPID/CUID/COOKIE values. The failure
 * delay is measured on both and reported, not asserted (timing).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { tempDir } from '../helpers/tmp.js';
import { transcript, type Step, type Target } from '../helpers/line-transcript.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const HELLO: Step = { send: 'VERSION\t1\t2\nCPID\t4242\n', replies: 0 };
let ripCounter = 0;
/** Each AUTH from its own rip unless given: the auth penalty (per rip) must not carry over between steps. */
const auth = (id: number, mech: string, extra: string): Step => {
  const rip = extra.includes('\trip=') ? '' : `\trip=10.1.${Math.floor(++ripCounter / 250)}.${ripCounter % 250}`;
  return { send: `AUTH\t${id}\t${mech}\tservice=smtp${rip}${extra}\n` };
};
const GOOD = b64('\0john@example.org\0pass');

const SCRIPTS: Record<string, Step[]> = {
  'PLAIN with initial response, good and bad password, nologin, unknown user': [
    HELLO, auth(1, 'PLAIN', `\tnologin\tlip=127.0.0.1\trip=10.0.0.1\tsecured\tresp=${GOOD}`),
    auth(2, 'PLAIN', `\trip=10.0.0.2\tresp=${b64('\0john@example.org\0wrong')}`),
    auth(3, 'PLAIN', `\tresp=${b64('\0nobody@example.org\0pass')}`),
    auth(4, 'plain', `\tresp=${b64('john@example.org\0john@example.org\0pass')}`),
    auth(5, 'PLAIN', `\tresp=${b64('x\0john@example.org\0pass')}`),
    auth(6, 'PLAIN', `\tresp=${b64('garbage')}`),
    auth(7, 'PLAIN', `\tresp=${b64('\0john@example.org\0')}`),
    auth(8, 'PLAIN', `\tresp=${b64('\0\0pass')}`),
    auth(9, 'PLAIN', '\tresp=!!!'),
  ],
  'LOGIN and PLAIN through CONT, empty and "=" responses, CANCEL': [
    HELLO, auth(1, 'LOGIN', ''), { send: `CONT\t1\t${b64('john@example.org')}\n` }, { send: `CONT\t1\t${b64('pass')}\n` },
    auth(2, 'PLAIN', ''), { send: `CONT\t2\t${GOOD}\n` },
    auth(3, 'PLAIN', '\tresp='), auth(4, 'PLAIN', '\tresp=='), { send: 'CONT\t4\t\n' },
    auth(5, 'LOGIN', `\tresp=${b64('john@example.org')}`), { send: `CONT\t5\t${b64('wrong')}\n` },
    auth(6, 'PLAIN', ''), { send: 'CANCEL\t6\n', replies: 0 }, { send: 'CONT\t6\tabc\n' }, { send: 'CONT\t99\tabc\n' },
    auth(7, 'PLAIN', ''), { send: 'CONT\t7\t!!!\n' },
  ],
  'unknown mechanism': [HELLO, auth(1, 'CRAM-MD5', '')],
  'AUTH without service': [HELLO, { send: 'AUTH\t1\tPLAIN\n' }],
  'duplicate request id': [HELLO, auth(1, 'PLAIN', ''), auth(1, 'PLAIN', '')],
  'AUTH before CPID': [{ send: 'VERSION\t1\t2\n', replies: 0 }, auth(1, 'PLAIN', '')],
  'second CPID': [HELLO, { send: 'CPID\t5\n' }],
  'garbage before VERSION': [{ send: 'HELLO\n' }],
  'garbage after the handshake': [HELLO, { send: 'GARBAGE\tx\n' }],
  'wrong major version': [{ send: 'VERSION\t2\t0\n' }],
  'minor version 1': [{ send: 'VERSION\t1\t1\nCPID\t1\n', replies: 0 }, auth(1, 'PLAIN', `\tresp=${GOOD}`)],
  'long line': [HELLO, { send: `AUTH\t1\tPLAIN\tservice=smtp\tresp=${'A'.repeat(20000)}\n` }],
};

const isFinal = (l: string) => !/^(VERSION|MECH|SPID|CUID|COOKIE)\t/.test(l);
const norm = (lines: string[]) => lines.map((l) => l.replace(/^S: (SPID|CUID|COOKIE)\t.*/, 'S: $1\tX'));

function setup(dir: string): { passwd: string; conf: string } {
  const passwd = join(dir, 'users.passwd');
  writeFileSync(passwd, 'john@example.org:{PLAIN}pass::::::\n', { mode: 0o644 });
  return { passwd, conf: 'auth_mechanisms = plain login\n' };
}

async function servers(t: import('node:test').TestContext, delay: string): Promise<{ dv: Target; sm: Target } | null> {
  const dir = tempDir(t, 'authsock-diff');
  chmodSync(dir, 0o755);
  const { passwd, conf } = setup(dir);
  const passdb = `passdb {\n  driver = passwd-file\n  args = ${passwd}\n}`;
  const dvd = setupDovecot(t, {
    start: true, protocols: 'lmtp', passdb,
    extraConf: `${conf}auth_failure_delay = ${delay}\nservice auth {\n  unix_listener auth-diff {\n    mode = 0666\n  }\n}\n`,
  });
  if (!dvd) return null;
  const smSock = join(dir, 'sm-auth');
  await startSealmail(t, {
    passdb,
    extraConf: `${conf}service auth {\n  unix_listener ${smSock} {\n    mode = 0666\n  }\n}\n`,
    rewriteConf: (text) => text.replace(/^auth_failure_delay = .*$/m, `auth_failure_delay = ${delay}`),
  });
  return { dv: { path: join(dvd.dir, 'base', 'auth-diff') }, sm: { path: smSock } };
}

test('auth client protocol transcripts equal Dovecot 2.3 auth', async (t) => {
  const s = await servers(t, '0');
  if (!s) return;
  for (const [name, steps] of Object.entries(SCRIPTS)) {
    const want = norm(await transcript(s.dv, steps, { isFinal }));
    const got = norm(await transcript(s.sm, steps, { isFinal }));
    if (process.env.AUTH_DIFF_DUMP) { (await import('node:fs')).appendFileSync(process.env.AUTH_DIFF_DUMP, `## ${name}\n--- dovecot\n${want.join('\n')}\n--- sealmail\n${got.join('\n')}\n`); continue; }
    assert.deepEqual(got, want, name);
  }
});

test('auth failure delay (measured, reported)', async (t) => {
  const s = await servers(t, '1 secs');
  if (!s) return;
  const bad: Step[] = [HELLO, auth(1, 'PLAIN', `\trip=10.9.9.9\tresp=${b64('\0john@example.org\0wrong')}`), auth(2, 'PLAIN', `\trip=10.9.9.9\tresp=${GOOD}`)];
  for (const [who, target] of [['dovecot', s.dv], ['sealmail', s.sm]] as const) {
    const t0 = Date.now();
    const lines = await transcript(target, bad.slice(0, 2), { isFinal, timeoutMs: 5000 });
    const t1 = Date.now();
    const after = await transcript(target, bad.filter((_, i) => i !== 1), { isFinal, timeoutMs: 5000 });
    t.diagnostic(`${who}: FAIL after ${t1 - t0} ms (auth_failure_delay = 1 secs); a good login from the same rip next took ${Date.now() - t1} ms`);
    assert.ok(lines.some((l) => l.startsWith('S: FAIL\t1')), lines.join('\n'));
    assert.ok(after.some((l) => l.startsWith('S: OK\t2')), after.join('\n'));
  }
});
