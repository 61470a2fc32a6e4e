/**
 * Master passdbs as Dovecot 2.3 uses them (auth-request.c,
 * auth-request-fields.c): a `master = yes` passdb never authenticates an
 * ordinary login; a master user logs in as another user with
 * `user<auth_master_user_separator>master` (LOGIN, AUTHENTICATE PLAIN/LOGIN)
 * or as PLAIN's authorization id, checked against the master's own password;
 * `pass = yes` then requires the user to exist in the ordinary passdbs.
 * Engine level, a real Sealmail over IMAP, and the real Dovecot's
 * `doveadm auth test` on the same files.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { setLogSink } from '../../src/log/logger.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';
import { tempDir } from '../helpers/tmp.js';
import { ownDaemon } from '../helpers/children.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { transcript, type Step } from '../helpers/line-transcript.js';

function passdbs(dir: string, pass: boolean): string {
  writeFileSync(join(dir, 'masters'), 'admin:{PLAIN}adminpw::::::\n', { mode: 0o644 });
  writeFileSync(join(dir, 'users'), 'ann@example.org:{PLAIN}annpw::::::\n', { mode: 0o644 });
  return `passdb {
  driver = passwd-file
  args = ${dir}/masters
  master = yes
${pass ? '  pass = yes\n' : ''}}
passdb {
  driver = passwd-file
  args = ${dir}/users
}
`;
}

async function engineFor(t: TestContext, conf: string): Promise<{ engine: AuthEngine; lines: string[] }> {
  const dir = tempDir(t, 'master');
  writeFileSync(join(dir, 'dovecot.conf'), conf.replace(/\$DIR/g, dir));
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  const engine = new AuthEngine(await loadConfig(join(dir, 'dovecot.conf')), 'imap');
  t.after(() => engine.close());
  return { engine, lines };
}

const info = { service: 'imap', rip: '127.0.0.1' };

test('a master passdb never authenticates an ordinary login', async (t) => {
  const dir = tempDir(t, 'master-files');
  const { engine } = await engineFor(t, passdbs(dir, false));
  assert.notEqual((await engine.authenticate('admin', 'adminpw', info)).result, 'ok');
  assert.equal((await engine.authenticate('ann@example.org', 'annpw', info)).result, 'ok');
  // no separator configured: the name is just a name
  assert.notEqual((await engine.authenticate('ann@example.org*admin', 'adminpw', info)).result, 'ok');
});

test('master user login with the separator and with PLAIN\'s authzid; pass = yes needs an existing user', async (t) => {
  const dir = tempDir(t, 'master-files');
  const { engine, lines } = await engineFor(t, `auth_master_user_separator = *\n${passdbs(dir, false)}`);
  const ok = await engine.authenticate('ann@example.org*admin', 'adminpw', info);
  assert.equal(ok.result, 'ok');
  assert.equal(ok.user, 'ann@example.org');
  assert.equal(ok.masterUser, 'admin');
  assert.ok(lines.includes('auth: Info: Master user logging in as ann@example.org'), lines.join('\n'));
  assert.equal((await engine.authenticate('ann@example.org*admin', 'annpw', info)).result, 'mismatch', 'the user\'s own password is not the master\'s');
  const authz = await engine.authenticate('admin', 'adminpw', { ...info, loginUser: 'ann@example.org' });
  assert.equal(authz.result, 'ok');
  assert.equal(authz.user, 'ann@example.org');
  // the same name on both sides is an ordinary login
  assert.equal((await engine.authenticate('ann@example.org', 'annpw', { ...info, loginUser: 'ann@example.org' })).result, 'ok');
  // without pass = yes the passdbs are not asked about the user (the userdb decides)
  assert.equal((await engine.authenticate('nobody@example.org*admin', 'adminpw', info)).result, 'ok');

  const dir2 = tempDir(t, 'master-files');
  const { engine: strict } = await engineFor(t, `auth_master_user_separator = *\n${passdbs(dir2, true)}`);
  assert.equal((await strict.authenticate('ann@example.org*admin', 'adminpw', info)).result, 'ok');
  assert.notEqual((await strict.authenticate('nobody@example.org*admin', 'adminpw', info)).result, 'ok');
});

test('PLAIN authzid without master passdbs fails as Dovecot logs it', async (t) => {
  const dir = tempDir(t, 'master-files');
  writeFileSync(join(dir, 'users'), 'ann@example.org:{PLAIN}annpw::::::\n');
  const { engine, lines } = await engineFor(t, `passdb {\n  driver = passwd-file\n  args = ${dir}/users\n}\n`);
  assert.notEqual((await engine.authenticate('ann@example.org', 'annpw', { ...info, loginUser: 'bob@example.org' })).result, 'ok');
  assert.ok(lines.some((l) => l.endsWith('Attempted master login with no master passdbs (trying to log in as user: bob@example.org)')), lines.join('\n'));
});

test('IMAP: master logins over a real socket; master credentials alone are refused', async (t) => {
  const srv = await startSealmail(t, {
    passdb: '',
    beforeStart: (dir) => { writeFileSync(join(dir, 'passdbs.conf'), passdbs(dir, false)); chmodSync(dir, 0o755); },
    rewriteConf: (text, dir) => `auth_master_user_separator = *\n!include ${dir}/passdbs.conf\n${text}`,
  });
  const c = await ImapLine.open(srv.imapPort);
  t.after(() => c.close());
  assert.match(await c.cmd('a', 'LOGIN admin adminpw'), /^a NO \[AUTHENTICATIONFAILED\]/m);
  assert.match(await c.cmd('b', 'LOGIN ann@example.org*admin adminpw'), /^b OK /m);
  const d = await ImapLine.open(srv.imapPort);
  t.after(() => d.close());
  assert.match(await d.cmd('c', `AUTHENTICATE PLAIN ${Buffer.from('ann@example.org\0admin\0adminpw').toString('base64')}`), /^c OK /m);
  assert.match(srv.output(), /Master user logging in as ann@example\.org/);
});

test('sealadm auth test and the real doveadm agree on master logins', async (t) => {
  const found = requireTool(t, 'doveadm');
  if (!found || !requireTool(t, 'dovecot')) return;
  const doveadm: string = found;
  for (const pass of [false, true]) {
    const dir = tempDir(t, 'master-diff');
    chmodSync(dir, 0o755);
    const conf = join(dir, 'dovecot.conf');
    writeFileSync(conf, `base_dir = ${dir}/run\nstate_dir = ${dir}/state\nlog_path = ${dir}/dovecot.log\nprotocols = imap\nlisten = 127.0.0.1\nssl = no\nauth_failure_delay = 0\nauth_master_user_separator = *\nservice imap-login {\n  inet_listener imap {\n    port = 0\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}\n${passdbs(dir, pass)}userdb {\n  driver = static\n  args = uid=5000 gid=5000 home=/nonexistent/%u\n}\n`, { mode: 0o644 });
    const start = spawnSync('dovecot', ['-c', conf], { stdio: 'ignore' });
    if (start.status !== 0) throw new Error(`dovecot failed to start; see ${dir}/dovecot.log`);
    ownDaemon(t, join(dir, 'run', 'master.pid'));
    const cases: string[][] = [
      ['ann@example.org*admin', 'adminpw'],
      ['ann@example.org*admin', 'annpw'],
      ['nobody@example.org*admin', 'adminpw'],
      ['admin', 'adminpw'],
      ['ann@example.org', 'annpw'],
    ];
    for (const args of cases) {
      const label = `pass=${pass ? 'yes' : 'no'} ${args.join(' ')}`;
      const theirs = spawnSync(doveadm, ['-c', conf, 'auth', 'test', ...args], { encoding: 'utf8' });
      const ours = spawnSync(process.execPath, [sealadmJs, '-c', conf, 'auth', 'test', ...args], { encoding: 'utf8' });
      assert.equal(ours.status, theirs.status, `${label}: exit code\ndoveadm: ${theirs.stdout}${theirs.stderr}\nsealadm: ${ours.stdout}${ours.stderr}`);
      // the whole reply, but for the empty field Sealmail shows after user= on an ordinary success (it has no extra fields here)
      assert.equal(ours.stdout.replace(/\n  \n/, '\n'), theirs.stdout, `${label}: stdout`);
    }
  }
});

test('auth client socket (Postfix SMTP AUTH): master logins answered as Dovecot 2.3 auth answers them', async (t) => {
  const dir = tempDir(t, 'master-authsock');
  chmodSync(dir, 0o755);
  const passdb = passdbs(dir, true);
  const conf = 'auth_mechanisms = plain login\nauth_master_user_separator = *\n';
  const dvd = setupDovecot(t, { start: true, protocols: 'lmtp', passdb, extraConf: `${conf}service auth {\n  unix_listener auth-diff {\n    mode = 0666\n  }\n}\n` });
  if (!dvd) return;
  const smSock = join(dir, 'sm-auth');
  await startSealmail(t, { passdb, extraConf: `${conf}service auth {\n  unix_listener ${smSock} {\n    mode = 0666\n  }\n}\n` });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let rip = 0;
  const auth = (id: number, resp: string): Step => ({ send: `AUTH\t${id}\tPLAIN\tservice=smtp\trip=10.2.0.${++rip}\tresp=${b64(resp)}\n` });
  const steps: Step[] = [
    { send: 'VERSION\t1\t2\nCPID\t4242\n', replies: 0 },
    auth(1, 'ann@example.org\0admin\0adminpw'),
    auth(2, '\0ann@example.org*admin\0adminpw'),
    auth(3, '\0ann@example.org*admin\0wrong'),
    auth(4, '\0admin\0adminpw'),
    auth(5, '\0nobody@example.org*admin\0adminpw'),
    auth(6, '\0ann@example.org\0annpw'),
  ];
  const isFinal = (l: string) => !/^(VERSION|MECH|SPID|CUID|COOKIE)\t/.test(l);
  const norm = (lines: string[]) => lines.map((l) => l.replace(/^S: (SPID|CUID|COOKIE)\t.*/, 'S: $1\tX'));
  const want = norm(await transcript({ path: join(dvd.dir, 'base', 'auth-diff') }, steps, { isFinal }));
  const got = norm(await transcript({ path: smSock }, steps, { isFinal }));
  assert.deepEqual(got, want);
});
