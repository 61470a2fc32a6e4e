/**
 * Roundcube's stock password plugin (Debian's roundcube-plugins, driver
 * poppassd) changes a mail-crypt user's password through Sealmail's
 * poppassd service (src/server/poppassd.ts, `plugin { sealmail_poppassd_listen }`).
 * The real Roundcube runs under PHP's built-in server with its own config
 * dir (ROUNDCUBE_CONFIG_DIR) and SQLite database; the test logs in over
 * plain HTTP (session cookie + request token), posts plugin.password-save,
 * then checks over IMAP: the new password logs in and reads the old
 * encrypted mail, the old one fails. A wrong current password (refused by
 * Roundcube, and by the service when Roundcube does not check it) and a new
 * password the passdb's scheme cannot store leave the keys untouched. The
 * same tree still starts the real Dovecot (the setting is in plugin {}).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MSGS, NEW, OLD, U, setup } from '../helpers/mailcrypt-sqlite-user.js';
import { freePort, requireDb, type DbKind } from '../helpers/databases.js';
import { spawnOwned } from '../helpers/children.js';
import { sealmailJs } from '../helpers/paths.js';
import { poppassdExchange } from '../helpers/poppassd-client.js';
import { requireTool } from '../helpers/tools.js';
import { until } from '../helpers/lmtp-wire.js';

const RC_ROOT = '/usr/share/roundcube';
const RC_ETC = '/etc/roundcube';

const accepts = (port: number) => new Promise<boolean>((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => { s.destroy(); resolve(true); });
  s.once('error', () => resolve(false));
});

/** IMAP LOGIN with a literal password; resolves to the tagged answer of LOGIN and, when it worked, FETCH of every body. */
async function imapLogin(port: number, pw: string): Promise<{ ok: boolean; bodies: string }> {
  const s = connect(port, '127.0.0.1');
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { text += d; });
  const seen = async (re: RegExp) => until(`IMAP ${re}: ${text}`, () => re.test(text), 60_000);
  try {
    await seen(/^\* OK/m);
    const p = Buffer.from(pw, 'utf8');
    s.write(`a LOGIN "${U}" {${p.length}}\r\n`);
    await seen(/^\+ /m);
    s.write(Buffer.concat([p, Buffer.from('\r\n')]));
    await seen(/^a (OK|NO|BAD)/m);
    if (!/^a OK/m.test(text)) return { ok: false, bodies: '' };
    const mark = text.length;
    s.write('b SELECT INBOX\r\nc FETCH 1:* BODY.PEEK[TEXT]\r\n');
    await seen(/^c (OK|NO|BAD)/m);
    return { ok: /^c OK/m.test(text), bodies: text.slice(mark) };
  } finally { s.destroy(); }
}

/** A minimal cookie jar + HTTP client for Roundcube (no redirects followed). */
class Browser {
  cookies = new Map<string, string>();
  constructor(readonly base: string) {}
  async req(path: string, form?: Record<string, string>): Promise<{ status: number; body: string; location: string | null }> {
    const headers: Record<string, string> = { Cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body: string | undefined;
    if (form) { headers['Content-Type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(form).toString(); }
    const r = await fetch(this.base + path, { method: form ? 'POST' : 'GET', headers, body, redirect: 'manual', signal: AbortSignal.timeout(120_000) });
    for (const c of r.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const eq = kv.indexOf('=');
      const v = kv.slice(eq + 1);
      if (v === '-del-' || /expires=Thu, 01-Jan-1970/i.test(c)) this.cookies.delete(kv.slice(0, eq)); else this.cookies.set(kv.slice(0, eq), v);
    }
    return { status: r.status, body: await r.text(), location: r.headers.get('location') };
  }
  static token(html: string): string {
    const m = /name="_token" value="([^"]+)"/.exec(html) ?? /"request_token":"([^"]+)"/.exec(html);
    assert.ok(m, `no request token in ${html.slice(0, 500)}`);
    return m[1];
  }
}

interface Rig { imapPort: number; popPort: number; rc: Browser; attrs: () => string; readsAll: (pw: string) => boolean; conf: string; output: () => string }

async function rig(t: TestContext, opts: { scheme?: string; confirmCurrent?: boolean; db?: DbKind } = {}): Promise<Rig | null> {
  const php = requireTool(t, 'php');
  if (!php || !requireTool(t, join(RC_ROOT, 'plugins', 'password', 'drivers', 'poppassd.php')) || !requireTool(t, 'sqlite3') || !requireDb(t, opts.db ?? 'sqlite')) return null;
  const base = await setup(t, opts.db);
  const { dir } = base;
  if (opts.scheme) {
    const sql = join(dir, 'dovecot-sql.conf.ext');
    writeFileSync(sql, readFileSync(sql, 'utf8').replace(/default_pass_scheme = \S+/, `default_pass_scheme = ${opts.scheme}`));
  }
  const imapPort = await freePort();
  const popPort = await freePort();
  const httpPort = await freePort();
  // a root master (no mail_uid: the uid comes from the userdb), plaintext IMAP on loopback as Roundcube's localhost:143
  writeFileSync(base.dir + '/dovecot.conf', readFileSync(join(dir, 'dovecot.conf'), 'utf8') + `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/base
ssl = no
disable_plaintext_auth = no
auth_failure_delay = 0
service imap-login {
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
plugin {
  sealmail_poppassd_listen = 127.0.0.1:${popPort}
}
`);
  const conf = join(dir, 'dovecot.conf');
  const srv = spawnOwned(t, process.execPath, [sealmailJs, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  srv.stdout!.on('data', (d) => (out += d));
  srv.stderr!.on('data', (d) => (out += d));
  await until(`sealmail to listen:\n${out}`, () => { if (srv.exitCode !== null) throw new Error(`sealmail exited:\n${out}`); return out.includes(`(poppassd)`) && out.includes('starting up'); }, 60_000);
  await until('IMAP port', () => accepts(imapPort), 60_000);

  // Roundcube: its own config dir (the stock defaults linked in), SQLite database, logs and temp under the test dir
  const rcDir = join(dir, 'roundcube');
  for (const d of ['config', 'logs', 'temp']) mkdirSync(join(rcDir, d), { recursive: true });
  for (const f of ['defaults.inc.php', 'mimetypes.php']) symlinkSync(join(RC_ETC, f), join(rcDir, 'config', f));
  const db = join(rcDir, 'roundcube.db');
  execFileSync('sqlite3', [db], { input: readFileSync(join(RC_ROOT, 'SQL', 'sqlite.initial.sql')) });
  writeFileSync(join(rcDir, 'config', 'config.inc.php'), `<?php
$config = [];
$config['db_dsnw'] = 'sqlite:///${db}?mode=0640';
$config['imap_host'] = '127.0.0.1:${imapPort}';
$config['smtp_host'] = '';
$config['des_key'] = 'sealmail-test-des-key-24b';
$config['plugins'] = ['password'];
$config['log_dir'] = '${rcDir}/logs/';
$config['temp_dir'] = '${rcDir}/temp/';
$config['enable_spellcheck'] = false;
$config['skin'] = 'elastic';
// the README's "password changes with mail-crypt" settings
$config['password_driver'] = 'poppassd';
$config['password_pop_host'] = '127.0.0.1';
$config['password_pop_port'] = ${popPort};
$config['password_confirm_current'] = ${opts.confirmCurrent === false ? 'false' : 'true'};
$config['password_minimum_length'] = 8;
`);
  const phpProc = spawnOwned(t, php, ['-S', `127.0.0.1:${httpPort}`, '-t', RC_ROOT], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ROUNDCUBE_CONFIG_DIR: join(rcDir, 'config') } });
  let phpOut = '';
  phpProc.stdout!.on('data', (d) => (phpOut += d));
  phpProc.stderr!.on('data', (d) => (phpOut += d));
  await until(`php -S to listen: ${phpOut}`, () => { if (phpProc.exitCode !== null) throw new Error(`php exited: ${phpOut}`); return accepts(httpPort); }, 60_000);
  const rc = new Browser(`http://127.0.0.1:${httpPort}/`);
  return { imapPort, popPort, rc, attrs: base.attrs, readsAll: base.readsAll, conf, output: () => out };
}

/** Log in to Roundcube and open the password page: the request token of the settings form. */
async function rcLogin(rc: Browser, pw: string): Promise<string> {
  const page = await rc.req('?_task=login');
  assert.equal(page.status, 200, page.body.slice(0, 500));
  const r = await rc.req('?_task=login', { _token: Browser.token(page.body), _task: 'login', _action: 'login', _timezone: 'UTC', _url: '', _user: U, _pass: pw });
  assert.equal(r.status, 302, `login refused: ${r.body.slice(0, 2000)}`);
  const form = await rc.req('?_task=settings&_action=plugin.password');
  assert.equal(form.status, 200);
  assert.match(form.body, /_newpasswd/, 'the password plugin form is there');
  return Browser.token(form.body);
}

async function rcChange(rc: Browser, token: string, cur: string, next: string): Promise<string> {
  const r = await rc.req('?_task=settings&_action=plugin.password-save', { _token: token, _curpasswd: cur, _newpasswd: next, _confpasswd: next });
  assert.equal(r.status, 200, r.body.slice(0, 500));
  const m = /display_message\("((?:[^"\\]|\\.)*)","(confirmation|error)"/.exec(r.body);
  assert.ok(m, `no message in the answer: ${r.body.slice(0, 1000)}`);
  return `${m[2]}: ${JSON.parse(`"${m[1]}"`)}`;
}

const bodiesOf = (fetched: string) => MSGS.every((m) => fetched.includes(m.split('\n\n')[1].trimEnd()));

for (const db of ['sqlite', 'mysql', 'pgsql'] as const) {
  test(`Roundcube password plugin (poppassd, ${db} userdb): changes a mail-crypt password; new logs in and reads old mail, old fails`, async (t) => {
    const r = await rig(t, { db });
    if (!r) return;
    const token = await rcLogin(r.rc, OLD);
    // a wrong current password: Roundcube itself refuses it, nothing reaches the keys
    const before = r.attrs();
    assert.match(await rcChange(r.rc, token, 'Wrong-Password-9', NEW), /^error: /);
    assert.equal(r.attrs(), before, 'keys untouched');
    assert.equal(await rcChange(r.rc, token, OLD, NEW), 'confirmation: Successfully saved.');
    const fresh = await imapLogin(r.imapPort, NEW);
    assert.ok(fresh.ok, 'the new password logs in');
    assert.ok(bodiesOf(fresh.bodies), `old encrypted mail reads back: ${fresh.bodies}`);
    assert.equal((await imapLogin(r.imapPort, OLD)).ok, false, 'the old password fails');
    assert.doesNotMatch(r.attrs(), /pending-privkeys/, 'the change is complete');
    assert.ok(r.readsAll(NEW));
    assert.match(r.output(), /poppassd\(ann@example\.org\)<127\.0\.0\.1>: password changed/);
    assert.ok(!r.output().includes(NEW) && !r.output().includes(OLD), 'no password in the log');
  });
}

test('poppassd: a wrong old password (Roundcube not checking it) is refused with the penalty, keys untouched', async (t) => {
  const r = await rig(t, { confirmCurrent: false });
  if (!r) return;
  const before = r.attrs();
  const got = await poppassdExchange(r.popPort, [`user ${U}`, 'pass Wrong-Password-9', `newpass ${NEW}`, 'quit']);
  assert.deepEqual(got.slice(1), ['200 Your password please.', '200 Your new password please.', '500 Old password is incorrect.', '200 Bye.']);
  assert.equal(r.attrs(), before, 'keys untouched');
  assert.match(r.output(), /poppassd\(ann@example\.org\)<127\.0\.0\.1>: password change refused: old password wrong/);
  assert.ok(!r.output().includes('Wrong-Password-9'), 'no password in the log');
  assert.equal((await imapLogin(r.imapPort, OLD)).ok, true, 'the old password still works');
});

test('Roundcube: a new password the passdb scheme (BLF-CRYPT, 72 bytes) cannot store is refused before anything changes', async (t) => {
  const r = await rig(t, { scheme: 'BLF-CRYPT' });
  if (!r) return;
  const token = await rcLogin(r.rc, OLD);
  const before = r.attrs();
  const long = `${NEW}-${'x'.repeat(80)}`;
  assert.match(await rcChange(r.rc, token, OLD, long), /^error: .*too long for the passdb scheme BLF-CRYPT/);
  assert.equal(r.attrs(), before, 'keys untouched');
  assert.equal((await imapLogin(r.imapPort, OLD)).ok, true, 'the old password still works');
  // a storable one then goes through, hashed as BLF-CRYPT
  assert.equal(await rcChange(r.rc, token, OLD, NEW), 'confirmation: Successfully saved.');
  const fresh = await imapLogin(r.imapPort, NEW);
  assert.ok(fresh.ok && bodiesOf(fresh.bodies), fresh.bodies);
});

test('the tree with sealmail_poppassd_listen is accepted by the real Dovecot (dovecot -n)', async (t) => {
  const dovecot = requireTool(t, 'dovecot');
  if (!dovecot) return;
  const { dir } = await setup(t);
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, readFileSync(conf, 'utf8') + 'plugin {\n  sealmail_poppassd_listen = 127.0.0.1:106\n}\n');
  const r = spawnSync(dovecot, ['-n', '-c', conf], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /sealmail_poppassd_listen = 127\.0\.0\.1:106/);
});
