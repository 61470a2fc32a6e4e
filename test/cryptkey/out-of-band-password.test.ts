/**
 * An out-of-band password change (the SQL hash updated by a tool that does
 * not re-key the mail-crypt user key): as in Dovecot the login with the new
 * password succeeds; Sealmail adds `* OK [ALERT]`, logs it once, keeps the
 * encrypted mail unreadable but intact, and LMTP keeps delivering with the
 * public key. `sealadm mailbox cryptokey password` with the old password
 * repairs it and the next login reads everything. POP3 logs in likewise
 * and refuses the encrypted message. Both process models:
 * supervised pools (mail_uid) and the root master (uid from the userdb),
 * on a SQLite user database; the pools also on MariaDB and PostgreSQL (the
 * process model changes nothing in the SQL, so not again there).
 */
import { writeSqlUser, useSqlUserdb, type SqlUser } from '../helpers/sql-user-tree.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { freePort, requireDb, type DbKind } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { ImapLine } from '../helpers/imap-line.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';
import { pop3Script } from '../helpers/pop3-client.js';
import { CRYPT_CONF } from '../helpers/mail-crypt.js';
import { sealadmJs } from '../helpers/paths.js';
import { startSealmail } from '../helpers/sealmail-server.js';

const U = 'ann@example.org';
const OLD = 'Old-Pässword-1';
const NEW = 'New-Pässword-2';
const root = process.getuid?.() === 0;

async function start(t: TestContext, rootMaster: boolean, kind: DbKind) {
  const lmtpPort = await freePort();
  const pop3Port = await freePort();
  const { uid, gid } = mailIds();
  const oldHash = await hashPassword('SHA512-CRYPT', Buffer.from(OLD), { user: U });
  let db: SqlUser | undefined;
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = sql\n  args = SQLEXT\n}',
    extraConf: `protocols = imap lmtp pop3
${CRYPT_CONF}service pop3-login {
  inet_listener pop3 {
    port = ${pop3Port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    port = ${lmtpPort}
    address = 127.0.0.1
  }
}
`,
    beforeStart: async (dir) => {
      db = await writeSqlUser(t, kind, dir, U, oldHash, { uid, gid }, 0o644); // the auth process (default_internal_user in the root master) reads it
    },
    rewriteConf: (text, dir) => useSqlUserdb(text, dir, rootMaster),
  });
  const setHash = async (pw: string) => {
    const h = await hashPassword('SHA512-CRYPT', Buffer.from(pw), { user: U });
    await db!.exec(`UPDATE u SET password = '${h}' WHERE email = '${U}';`);
  };
  const imap = async (t2: TestContext, pw: string) => {
    const c = await ImapLine.open(srv.imapPort);
    t2.after(() => c.close());
    return { c, login: await c.cmd('a', `LOGIN ${U} "${pw}"`) };
  };
  const deliver = async (subject: string) => {
    const w = new LmtpWire(lmtpPort);
    t.after(() => w.sock.destroy());
    await w.hello();
    await w.send('MAIL FROM:<x@example.net>\r\n', /^250 .*\r\n/m);
    await w.send(`RCPT TO:<${U}>\r\n`, /^250 .*\r\n/m);
    await w.send('DATA\r\n', /^354 .*\r\n/m);
    return w.send(`Subject: ${subject}\r\n\r\n${subject} body\r\n.\r\n`, /^[245]\d\d [^\r]*\r\n/m);
  };
  const maildir = () => join(srv.home(U), 'Maildir');
  const files = () => ['new', 'cur'].flatMap((d) => { try { return readdirSync(join(maildir(), d)).map((f) => join(maildir(), d, f)); } catch { return []; } }).sort();
  const snapshot = () => new Map(files().map((f) => [f.replace(/.*\//, '').replace(/:2,.*$/, ''), readFileSync(f).toString('base64')]));
  const sealadm = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { srv, pop3Port, setHash, imap, deliver, files, snapshot, sealadm };
}

for (const [kind, rootMaster] of [['sqlite', false], ['sqlite', true], ['mysql', false], ['pgsql', false]] as const) {
  const name = `${kind} userdb, ${rootMaster ? 'root master (no mail_uid)' : 'pools (mail_uid)'}`;
  test(`out-of-band hash change, ${name}: new password logs in with an ALERT, encrypted mail unreadable but intact, delivery goes on; cryptokey password repairs`, { skip: rootMaster && !root ? 'needs root' : false }, async (t) => {
    if (!requireDb(t, kind)) return;
    const s = await start(t, rootMaster, kind);
    // the first login makes the user key under OLD; one message stored encrypted
    const first = await s.imap(t, OLD);
    assert.match(first.login, /^a OK /m, s.srv.output());
    first.c.close();
    assert.match(await s.deliver('before'), /^250 /m, s.srv.output());
    assert.equal(s.files().length, 1);
    assert.equal(readFileSync(s.files()[0]).subarray(0, 7).toString(), 'CRYPTED');

    await s.setHash(NEW); // an admin panel's UPDATE: no re-key
    const before = s.snapshot();
    const second = await s.imap(t, NEW);
    assert.match(second.login, /^\* OK \[ALERT\] Your mail key is still locked with an earlier password: [^\r]*\r\na OK /m, s.srv.output());
    assert.match(await second.c.cmd('b', 'SELECT INBOX'), /^\* 1 EXISTS\r\n[\s\S]*^b OK /m);
    const fetch = await second.c.cmd('c', 'FETCH 1 BODY[]');
    assert.match(fetch, /^c NO /m, 'the encrypted body is refused');
    assert.doesNotMatch(fetch, /before body/);
    assert.match(await second.c.cmd('d', 'FETCH 1 (UID FLAGS RFC822.SIZE)'), /^\* 1 FETCH \(UID 1 FLAGS/m, 'what needs no key still works');
    second.c.close();
    // a second login: ALERT again, but the admin log says it once
    const third = await s.imap(t, NEW);
    assert.match(third.login, /^\* OK \[ALERT\] /m);
    third.c.close();
    await until('the log line', () => /the login password does not open the mail key/.test(s.srv.output()));
    assert.equal(s.srv.output().match(/the login password does not open the mail key/g)!.length, 1, s.srv.output());
    assert.doesNotMatch(s.srv.output(), new RegExp(`${NEW}|${OLD}`), 'no password in the log');
    const old = await s.imap(t, OLD);
    assert.match(old.login, /^a NO /m, 'the old password no longer logs in');

    // delivery with the public key goes on; nothing stored before was touched
    assert.match(await s.deliver('after'), /^250 /m);
    const now = s.snapshot();
    for (const [k, v] of before) assert.equal(now.get(k), v, 'stored mail unchanged');
    assert.equal(now.size, 2);
    // POP3: the login succeeds too (no alert a client would show), the encrypted message is refused
    // AUTH PLAIN: the password's UTF-8 bytes travel in base64
    const pop = await pop3Script(s.pop3Port, [`AUTH PLAIN ${Buffer.from(`\0${U}\0${NEW}`).toString('base64')}`, 'STAT', 'RETR 1', 'QUIT']);
    assert.match(pop[1], /^\+OK/, pop.join('') + s.srv.output());
    assert.match(pop[2], /^\+OK 2 /);
    assert.match(pop[3], /^-ERR /, pop.join(''));
    assert.doesNotMatch(pop.join(''), /before body/);

    // repair: the key re-encrypted from the old password to the new one
    const r = s.sealadm(['mailbox', 'cryptokey', 'password', '-u', U, '-o', OLD, '-n', NEW]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const fixed = await s.imap(t, NEW);
    assert.doesNotMatch(fixed.login, /ALERT/);
    assert.match(fixed.login, /^a OK /m);
    await fixed.c.cmd('b', 'SELECT INBOX');
    const all = await fixed.c.cmd('c', 'FETCH 1:2 BODY[TEXT]');
    assert.match(all, /before body/, s.srv.output());
    assert.match(all, /after body/);
    assert.match(all, /^c OK /m);
    assert.ok(!readdirSync(join(s.srv.home(U), 'Maildir')).includes('sealmail.crypt-locked'), 'the mark is gone after a login that opens the key');
  });
}
