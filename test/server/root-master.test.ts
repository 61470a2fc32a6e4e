/**
 * Dovecot's process model on the ISPmail tree shape: Sealmail started as
 * root with no mail_uid (uid/gid from the userdb only) starts, and serves
 * IMAP (plain, STARTTLS, IMAPS) with the master as root, imap-login
 * processes as default_login_user, the auth process as
 * default_internal_user and the mail processes as the userdb's uid — one per
 * uid — with mail files owned by that uid; kill -9 of a login or mail process
 * is logged and replaced; Dovecot's texts for a userdb uid of 0, a missing
 * uid, a uid outside first/last_valid_uid and an unknown default_login_user.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { ImapLine } from '../helpers/imap-line.js';
import { mailIds } from '../helpers/dovecot.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';
import { freePort } from '../helpers/databases.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../helpers/mail-crypt.js';

const root = process.getuid?.() === 0;
const skip = root ? false : 'needs root (the mode is root without mail_uid)';
const passwdUid = (name: string) => Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());

/** The server's conf without mail_uid/mail_gid: the ISPmail shape. */
const noMailUid = (text: string) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, '');

function start(t: TestContext, opts: Parameters<typeof startSealmail>[1] = {}): Promise<SealmailServer> {
  const rewrite = opts.rewriteConf;
  return startSealmail(t, { ...opts, rewriteConf: (text, dir) => noMailUid(rewrite ? rewrite(text, dir) : text) });
}

/** The server's processes: role (from the command line) and real uid (from /proc/PID/status). */
function processes(masterPid: number): { pid: number; role: string; uid: number }[] {
  const out: { pid: number; role: string; uid: number }[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let status: string;
    let cmd: string;
    try { status = readFileSync(`/proc/${p}/status`, 'utf8'); cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8'); } catch { continue; }
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
    if (Number(p) !== masterPid && ppid !== masterPid) continue;
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const role = Number(p) === masterPid ? 'master' : cmd.includes('--login-process') ? 'login' : cmd.includes('--auth-process') ? 'auth' : cmd.includes('--mail-process') ? 'mail' : cmd.includes('--lmtp-process') ? 'lmtp' : 'other';
    out.push({ pid: Number(p), role, uid });
  }
  return out;
}

const files = (home: string) => ['cur', 'new'].flatMap((d) => (existsSync(join(home, 'Maildir', d)) ? readdirSync(join(home, 'Maildir', d)).map((f) => join(home, 'Maildir', d, f)) : []));

async function loginAndAppend(port: number, user: string, how: 'plain' | 'starttls' | 'imaps'): Promise<string> {
  let c = await ImapLine.open(port, how === 'imaps');
  if (how === 'starttls') {
    await c.cmd('s', 'STARTTLS');
    c.sock.removeAllListeners('data');
    const tls = tlsConnect({ socket: c.sock, rejectUnauthorized: false });
    c = new ImapLine(tls);
    await new Promise((r) => tls.once('secureConnect', r));
  }
  const login = await c.cmd('a', `LOGIN ${user} pass`);
  assert.match(login, /^a OK \[CAPABILITY IMAP4rev1 [^\]]*\] Logged in\r\n$/m, `${how} login: ${login}`);
  const msg = `Subject: ${how}\r\n\r\nhello\r\n`;
  c.sock.write(`b APPEND INBOX {${msg.length}}\r\n`);
  await c.until(/^\+ /m, 'continuation');
  c.sock.write(`${msg}\r\n`);
  await c.until(/^b OK/m, 'APPEND');
  const sel = await c.cmd('c', 'SELECT INBOX');
  assert.match(sel, /\* \d+ EXISTS/);
  await c.cmd('d', 'LOGOUT');
  c.close();
  return login;
}

test('root without mail_uid: IMAP plain, STARTTLS and IMAPS, processes separated as Dovecot separates them', { skip }, async (t) => {
  const { uid, gid } = mailIds();
  const srv = await start(t);
  for (const how of ['plain', 'starttls', 'imaps'] as const) await loginAndAppend(how === 'imaps' ? srv.imapsPort : srv.imapPort, 'u@example.org', how);
  const stored = files(srv.home('u@example.org'));
  assert.equal(stored.length, 3);
  for (const f of stored) assert.deepEqual([statSync(f).uid, statSync(f).gid], [uid, gid], `${f} owned by the userdb's uid`);
  const ps = processes(srv.pid);
  const byRole = (r: string) => ps.filter((p) => p.role === r);
  assert.deepEqual(byRole('master').map((p) => p.uid), [0]);
  assert.ok(byRole('login').length >= 1);
  for (const p of byRole('login')) assert.equal(p.uid, passwdUid('dovenull'), 'imap-login as default_login_user');
  assert.deepEqual(byRole('auth').map((p) => p.uid), [passwdUid('dovecot')], 'auth as default_internal_user');
  assert.deepEqual(byRole('mail').map((p) => p.uid), [uid], 'one mail process, as the userdb uid');
  assert.deepEqual(byRole('other'), []);
});

/** Users of two uids from an SQLite user_query (the ISPmail shape: `… uid, gid FROM …`), passdb and userdb from a root-only dovecot-sql.conf.ext. */
const TWO_UIDS = { 'a@example.org': 65534, 'b@example.org': 60001 };
function twoUidServer(t: TestContext, extraConf = ''): Promise<SealmailServer> {
  return start(t, {
    extraConf,
    passdb: 'passdb {\n  driver = sql\n  args = SQLEXT\n}',
    beforeStart: (dir) => {
      const db = join(dir, 'users.sqlite');
      const rows = Object.entries(TWO_UIDS).map(([u, id]) => `INSERT INTO u VALUES ('${u}', '{PLAIN}pass', ${id}, ${id});`).join(' ');
      const r = spawnSync('sqlite3', [db, `CREATE TABLE u (email TEXT, password TEXT, uid INTEGER, gid INTEGER); ${rows}`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      chmodSync(db, 0o644); // the auth process (default_internal_user) reads it
      writeFileSync(join(dir, 'dovecot-sql.conf.ext'), `driver = sqlite\nconnect = ${db}\npassword_query = SELECT email AS user, password FROM u WHERE email = '%u'\nuser_query = SELECT '${dir}/home/%u' AS home, uid, gid FROM u WHERE email = '%u'\n`, { mode: 0o600 });
      chownSync(join(dir, 'dovecot-sql.conf.ext'), 0, 0); // ISPmail: root-only
      chmodSync(join(dir, 'home'), 0o777); // each uid creates its own home
    },
    rewriteConf: (text, dir) => text.replace('SQLEXT', join(dir, 'dovecot-sql.conf.ext')).replace(/userdb \{\n  driver = static\n  args = [^\n]*\n\}/, `userdb {\n  driver = sql\n  args = ${join(dir, 'dovecot-sql.conf.ext')}\n}`),
  });
}

test('root without mail_uid: users of two uids from an SQLite user_query, each served by a process of its own uid', { skip }, async (t) => {
  const uids = TWO_UIDS;
  const srv = await twoUidServer(t);
  // two sessions at once: both stay open while the processes are inspected
  const sessions: ImapLine[] = [];
  t.after(() => { for (const s of sessions) s.close(); });
  for (const user of Object.keys(uids)) {
    await loginAndAppend(srv.imapPort, user, 'plain');
    const c = await ImapLine.open(srv.imapPort);
    sessions.push(c);
    assert.match(await c.cmd('a', `LOGIN ${user} pass`), /^a OK /m);
  }
  for (const [user, id] of Object.entries(uids)) {
    const stored = files(srv.home(user));
    assert.equal(stored.length, 1, user);
    assert.equal(statSync(stored[0]).uid, id, `${user}'s mail owned by uid ${id}`);
  }
  const mail = processes(srv.pid).filter((p) => p.role === 'mail').map((p) => p.uid).sort();
  assert.deepEqual(mail, Object.values(uids).sort(), 'one mail process per uid, running as it');
});

test('root without mail_uid: a mail-crypt user (key password from the login, userdb_mail_crypt_private_password=%w) stores encrypted and reads back', { skip }, async (t) => {
  const srv = await start(t, { passdb: CRYPT_PASSDB, extraConf: CRYPT_CONF });
  await loginAndAppend(srv.imapsPort, 'eve@example.org', 'imaps');
  const stored = files(srv.home('eve@example.org'));
  assert.equal(stored.length, 1);
  assert.equal(readFileSync(stored[0]).subarray(0, 7).toString(), 'CRYPTED', 'stored encrypted');
  const c = await ImapLine.open(srv.imapsPort, true);
  t.after(() => c.close());
  await c.cmd('a', 'LOGIN eve@example.org pass');
  await c.cmd('b', 'SELECT INBOX');
  assert.match(await c.cmd('c', 'FETCH 1 BODY[]'), /Subject: imaps\r\n\r\nhello/);
  assert.doesNotMatch(srv.output(), /mail-crypt|Error/);
});

test('root without mail_uid: the passdb\'s userdb_uid/userdb_gid (prefetch) decide the mail process\'s uid', { skip }, async (t) => {
  const srv = await start(t, {
    passdb: 'passdb {\n  driver = static\n  args = password=pass userdb_uid=60002 userdb_gid=60002\n}',
    beforeStart: (dir) => chmodSync(join(dir, 'home'), 0o777),
    rewriteConf: (text) => text.replace(/(userdb \{\n  driver = static\n  args = )uid=\S+ gid=\S+ /, '$1'),
  });
  await loginAndAppend(srv.imapPort, 'p@example.org', 'plain');
  const stored = files(srv.home('p@example.org'));
  assert.equal(stored.length, 1);
  assert.equal(statSync(stored[0]).uid, 60002);
  assert.deepEqual(processes(srv.pid).filter((p) => p.role === 'mail').map((p) => p.uid), [60002]);
});

test('root without mail_uid: LMTP stores each recipient\'s copy as that recipient\'s uid, in one transaction', { skip }, async (t) => {
  const lmtpPort = await freePort();
  const srv = await twoUidServer(t, `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n    address = 127.0.0.1\n  }\n}\n`);
  const w = new LmtpWire(lmtpPort);
  t.after(() => w.sock.destroy());
  await w.hello();
  await w.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
  for (const u of Object.keys(TWO_UIDS)) await w.send(`RCPT TO:<${u}>\r\n`, /^250 .*\r\n/m);
  await w.send('DATA\r\n', /^354 .*\r\n/m);
  const replies = await w.send('Subject: both\r\n\r\nhello\r\n.\r\n', /^250 [^\r]*\r\n(?:.*\r\n)?250 [^\r]*\r\n/m);
  assert.match(replies, /<a@example\.org> [^\r]*Saved/);
  for (const [user, id] of Object.entries(TWO_UIDS)) {
    const stored = files(srv.home(user));
    assert.equal(stored.length, 1, user);
    assert.equal(statSync(stored[0]).uid, id, `${user}'s copy owned by uid ${id}`);
    assert.match(readFileSync(stored[0], 'utf8'), /^Return-Path: <x@example\.net>/);
  }
  const ps = processes(srv.pid);
  // one LMTP front process per core (service lmtp's process_min_avail), every one as default_internal_user
  assert.deepEqual([...new Set(ps.filter((p) => p.role === 'lmtp').map((p) => p.uid))], [passwdUid('dovecot')], 'the LMTP front as default_internal_user');
  assert.deepEqual(ps.filter((p) => p.role === 'mail').map((p) => p.uid).sort(), Object.values(TWO_UIDS).sort());
});

test('root without mail_uid: ManageSieve logs in through a login process and stores scripts as the userdb uid', { skip }, async (t) => {
  const { uid } = mailIds();
  const sievePort = await freePort();
  const srv = await start(t, { extraConf: `protocols = imap sieve\nservice managesieve-login {\n  inet_listener sieve {\n    port = ${sievePort}\n  }\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n` });
  const w = new LmtpWire(sievePort); // a line client: ManageSieve's replies are lines too
  t.after(() => w.sock.destroy());
  await w.expect(/^OK "Sealmail test ready\."\r\n/m);
  assert.match(await w.send(`AUTHENTICATE "PLAIN" "${Buffer.from('\0u@example.org\0wrong').toString('base64')}"\r\n`, /^(OK|NO)[^\r]*\r\n/m), /^NO "Authentication failed\."/m);
  await w.send(`AUTHENTICATE "PLAIN" "${Buffer.from('\0u@example.org\0pass').toString('base64')}"\r\n`, /^OK "Logged in\."\r\n/m);
  const script = 'keep;\r\n';
  assert.match(await w.send(`PUTSCRIPT "s" {${script.length}+}\r\n${script}\r\n`, /^(OK|NO) [^\r]*\r\n/m), /^OK "PUTSCRIPT completed\."/);
  assert.match(await w.send('SETACTIVE "s"\r\n', /^(OK|NO) [^\r]*\r\n/m), /^OK /);
  await w.send('LISTSCRIPTS\r\n', /^OK [^\r]*\r\n/m);
  assert.match(w.text, /^"s" ACTIVE\r\n/m);
  const stored = join(srv.home('u@example.org'), 'sieve', 's.sieve');
  assert.equal(statSync(stored).uid, uid, 'the script is owned by the userdb uid');
  const ps = processes(srv.pid);
  assert.deepEqual(ps.filter((p) => p.role === 'mail').map((p) => p.uid), [uid]);
  for (const p of ps.filter((p) => p.role === 'login')) assert.equal(p.uid, passwdUid('dovenull'));
});

test('root without mail_uid: several LMTP front processes take connections in turn, and lmtp_user_concurrency_limit counts over all of them', { skip }, async (t) => {
  const lmtpPort = await freePort();
  const srv = await start(t, { extraConf: `protocols = imap lmtp\nlmtp_user_concurrency_limit = 1\nservice lmtp {\n  process_min_avail = 2\n  inet_listener lmtp {\n    port = ${lmtpPort}\n    address = 127.0.0.1\n  }\n}\n` });
  const fronts = processes(srv.pid).filter((p) => p.role === 'lmtp');
  assert.equal(fronts.length, 2, 'two LMTP front processes');
  for (const p of fronts) assert.equal(p.uid, passwdUid('dovecot'));
  // in turn: a and b are in different front processes, and b still finds u's one slot taken
  const a = new LmtpWire(lmtpPort);
  const b = new LmtpWire(lmtpPort);
  t.after(() => { a.sock.destroy(); b.sock.destroy(); });
  await a.hello();
  await b.hello();
  assert.equal(await a.send('MAIL FROM:<x@example.net>\r\nRCPT TO:<u@example.org>\r\n', /^250 2\.1\.5 .*\r\n/m), '250 2.1.5 OK\r\n');
  await b.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
  assert.equal(await b.send('RCPT TO:<u@example.org>\r\n', /^\d{3} .*\r\n/m), '451 4.3.0 <u@example.org> Too many concurrent deliveries for user\r\n');
  await a.send('DATA\r\n', /^354 .*\r\n/m);
  await a.send('Subject: one\r\n\r\nbody\r\n.\r\n', /^250 2\.0\.0 <u@example\.org> .*\r\n/m);
  assert.equal(await b.send('RCPT TO:<u@example.org>\r\n', /^\d{3} .*\r\n/m), '250 2.1.5 OK\r\n');
  await b.send('DATA\r\n', /^354 .*\r\n/m);
  await b.send('Subject: two\r\n\r\nbody\r\n.\r\n', /^250 2\.0\.0 <u@example\.org> .*\r\n/m);
  assert.equal(files(srv.home('u@example.org')).length, 2);
  // and so does the slot of a connection dropped in the other process
  assert.equal(await a.send('MAIL FROM:<x@example.net>\r\nRCPT TO:<u@example.org>\r\n', /^250 2\.1\.0 .*\r\n\d{3} .*\r\n/m), '250 2.1.0 OK\r\n250 2.1.5 OK\r\n');
  await b.send('RSET\r\nMAIL FROM:<x@example.net>\r\n', /^250 .*\r\n250 .*\r\n/m);
  assert.match(await b.send('RCPT TO:<u@example.org>\r\n', /^\d{3} .*\r\n/m), /^451 /);
  a.sock.destroy();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await b.send('RCPT TO:<u@example.org>\r\n', /^\d{3} .*\r\n/m);
    if (r.startsWith('250')) break;
    assert.ok(Date.now() < deadline, 'the slot of a dropped connection is never released');
    await new Promise((res) => setTimeout(res, 50));
  }
});

test('root without mail_uid: quota-status answers from the usage read by the mail process of the recipient\'s uid', { skip }, async (t) => {
  const srv = await start(t, {
    extraConf: 'mail_plugins = $mail_plugins quota\nplugin {\n  quota = maildir:User quota\n  quota_grace = 0\n}\nservice quota-status {\n  unix_listener quota-status {\n    mode = 0666\n  }\n}\n',
    rewriteConf: (text) => text.replace(/(userdb \{\n  driver = static\n  args = uid=\S+ gid=\S+ home=\S+)/, '$1 quota_rule=*:storage=2K'),
  });
  await loginAndAppend(srv.imapPort, 'u@example.org', 'plain'); // the mail process made the Maildir and its maildirsize
  const policy = (size: number) => unixExchange(join(srv.dir, 'base', 'quota-status'), `request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=u@example.org\nsize=${size}\n\n`, /\n\n/);
  assert.equal(await policy(100), 'action=OK\n\n');
  assert.match(await policy(5000), /^action=554 5\.2\.2 Quota exceeded/);
  assert.deepEqual([...new Set(processes(srv.pid).filter((p) => p.role === 'lmtp').map((p) => p.uid))], [passwdUid('dovecot')], 'quota-status in the LMTP processes');
});

test('root without mail_uid: SIGTERM stops the master and every child, and removes the login sockets', { skip }, async (t) => {
  const srv = await start(t);
  await loginAndAppend(srv.imapPort, 'u@example.org', 'plain');
  const children = processes(srv.pid).filter((p) => p.role !== 'master');
  assert.ok(children.some((p) => p.role === 'mail'));
  const code = await Promise.race([srv.stop(), new Promise<string>((r) => setTimeout(() => r('still running after 20 s'), 20_000).unref())]);
  assert.equal(code, 0);
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  await until('every child gone', () => children.every((p) => !alive(p.pid)));
  assert.equal(existsSync(join(srv.dir, 'base', 'sealmail-login')), false);
});

/** One request on a unix socket: send, then collect until a line matches. */
async function unixExchange(path: string, send: string, done: RegExp): Promise<string> {
  const s = netConnect(path);
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { buf += d; });
  s.on('error', () => undefined);
  s.write(send);
  try { return await until(`a reply on ${path}`, () => done.test(buf) && buf); } finally { s.destroy(); }
}

test('root without mail_uid: Postfix\'s SASL socket and auth-userdb are served by the auth process', { skip }, async (t) => {
  const srv = await start(t, { extraConf: 'service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n  unix_listener auth-userdb {\n    mode = 0600\n  }\n}\n' });
  const resp = Buffer.from('\0u@example.org\0pass').toString('base64');
  const ok = await unixExchange(join(srv.dir, 'base', 'auth-postfix'), `VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\tresp=${resp}\n`, /^(OK|FAIL)\t1\b.*\n/m);
  assert.match(ok, /^OK\t1\tuser=u@example\.org\n/m);
  const user = await unixExchange(join(srv.dir, 'base', 'auth-userdb'), 'VERSION\t1\t0\nUSER\t1\tu@example.org\tservice=lda\n', /^(USER|NOTFOUND|FAIL)\t1\b.*\n/m);
  assert.match(user, /^USER\t1\tu@example\.org\t.*uid=65534/m);
  const auth = processes(srv.pid).find((p) => p.role === 'auth');
  assert.equal(auth?.uid, passwdUid('dovecot'));
});

/** One LMTP delivery to `rcpt`; the final reply. */
async function lmtpDeliver(port: number, rcpt: string): Promise<string> {
  const w = new LmtpWire(port);
  try {
    await w.hello();
    await w.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
    await w.send(`RCPT TO:<${rcpt}>\r\n`, /^250 .*\r\n/m);
    await w.send('DATA\r\n', /^354 .*\r\n/m);
    return await w.send('Subject: x\r\n\r\nhello\r\n.\r\n', /^\d{3} .*\r\n/m);
  } finally { w.sock.destroy(); }
}

test('root without mail_uid: a login, mail, auth or LMTP process killed with -9 is logged and replaced', { skip }, async (t) => {
  const lmtpPort = await freePort();
  const srv = await start(t, { extraConf: `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n    address = 127.0.0.1\n  }\n}\n` });
  await loginAndAppend(srv.imapPort, 'u@example.org', 'plain');
  for (const role of ['login', 'mail', 'auth', 'lmtp']) {
    const victim = processes(srv.pid).find((p) => p.role === role)!;
    process.kill(victim.pid, 'SIGKILL');
    await until(`${role} ${victim.pid} logged`, () => srv.output().includes(`child ${victim.pid} killed with signal 9`));
    if (role !== 'mail') await until(`a new ${role} process`, () => processes(srv.pid).some((p) => p.role === role && p.pid !== victim.pid));
    // served again (a mail process is started on the next login)
    await loginAndAppend(srv.imapsPort, 'u@example.org', 'imaps').catch((e: Error) => { throw new Error(`after killing the ${role} process: ${e.message}\n${srv.output()}`); });
    assert.match(await lmtpDeliver(lmtpPort, 'u@example.org'), /^250 2\.0\.0 <u@example\.org> [^\r]*Saved/m, `LMTP after killing the ${role} process`);
  }
  assert.equal(files(srv.home('u@example.org')).length, 9);
});

for (const [name, userdbArgs, extraConf, logText] of [
  ['a userdb uid of 0', 'uid=0 gid=0', '', 'userdb returned 0 as uid'],
  ['a missing uid and no mail_uid', 'gid=65534', '', 'User is missing UID (see mail_uid setting)'],
  ['a uid below first_valid_uid', 'uid=65534 gid=65534', 'first_valid_uid = 65535\n', 'Mail access for users with UID 65534 not permitted (see first_valid_uid in config file, uid from userdb lookup).'],
] as const) {
  test(`root without mail_uid: ${name} is refused at login and at delivery with Dovecot's texts`, { skip }, async (t) => {
    const lmtpPort = await freePort();
    const lmtp = `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n    address = 127.0.0.1\n  }\n}\n`;
    const srv = await start(t, { extraConf: extraConf + lmtp, rewriteConf: (text) => text.replace(/(userdb \{\n  driver = static\n  args = )uid=\S+ gid=\S+/, `$1${userdbArgs}`) });
    const c = await ImapLine.open(srv.imapPort);
    t.after(() => c.close());
    c.sock.write('a LOGIN u@example.org pass\r\n');
    const reply = await c.until(/\* BYE [^\r]*\r\n/, 'BYE');
    assert.equal(reply, 'a OK Logged in, but initialization failed.\r\n* BYE Internal error occurred. Refer to server log for more information.\r\n');
    await until('the log line', () => srv.output().includes(logText));
    // LMTP: the recipient is accepted, its copy fails with 451 (Dovecot: "Failed to initialize user"), nothing is stored
    assert.match(await lmtpDeliver(lmtpPort, 'u@example.org'), /^451 4\.3\.0 <u@example\.org> Temporary internal error\r\n/);
    await until('the LMTP log line', () => srv.output().includes(`Failed to initialize user: ${logText}`));
    assert.deepEqual(files(srv.home('u@example.org')), []);
    assert.doesNotMatch(srv.output(), /NaN|TypeError|RangeError|ERR_/);
    assert.equal(processes(srv.pid).filter((p) => p.role === 'mail').length, 0, 'no mail process started');
  });
}

test('root without mail_uid: an unknown default_login_user stops the start with Dovecot\'s text', { skip }, async (t) => {
  await assert.rejects(start(t, { extraConf: 'default_login_user = nosuchuser\n', startMs: 20_000 }), (e: Error) => {
    assert.match(e.message, /doveconf: Fatal: Error in configuration file \S+dovecot\.conf: default_login_user doesn't exist: nosuchuser/);
    assert.doesNotMatch(e.message, /NaN|TypeError|ERR_/);
    return true;
  });
});
