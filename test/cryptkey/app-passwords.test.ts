/**
 * Per-device app passwords (sealadm app-password add|list|revoke): a
 * random password that logs in over IMAP, POP3, ManageSieve and the auth
 * socket Postfix uses for SMTP AUTH, and opens its own copy of the user's
 * mail-crypt key, so encrypted mail reads; a wrong one is refused like a
 * wrong password and changes nothing; the main password changing
 * (`sealadm password change`) leaves it valid; revoking removes its key
 * copy and the next login fails. Both process models: supervised pools
 * (mail_uid, the auth process reads the home) and the root master (the
 * auth process runs as default_internal_user and the master checks), on a
 * SQLite user database; the pools also on MariaDB and PostgreSQL (the
 * password change's UPDATE runs there; the process model changes no SQL).
 */
import { writeSqlUser, useSqlUserdb } from '../helpers/sql-user-tree.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../src/auth/schemes/index.js';
import { freePort, requireDb, type DbKind } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { ImapLine } from '../helpers/imap-line.js';
import { LmtpWire } from '../helpers/lmtp-wire.js';
import { pop3Script } from '../helpers/pop3-client.js';
import { CRYPT_CONF } from '../helpers/mail-crypt.js';
import { sealadmJs } from '../helpers/paths.js';
import { startSealmail } from '../helpers/sealmail-server.js';

const U = 'ann@example.org';
const MAIN = 'Main-Pässword-1';
const MAIN2 = 'Main-Pässword-2';

const root = process.getuid?.() === 0;

async function start(t: TestContext, rootMaster: boolean, kind: DbKind) {
  const lmtpPort = await freePort();
  const pop3Port = await freePort();
  const sievePort = await freePort();
  const { uid, gid } = mailIds();
  const hash = await hashPassword('SHA512-CRYPT', Buffer.from(MAIN), { user: U });
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = sql\n  args = SQLEXT\n}',
    extraConf: `protocols = imap lmtp pop3 sieve
${CRYPT_CONF}plugin {
  sealmail_password_update_query = UPDATE u SET password = '%{new_password_hash}' WHERE email = '%u'
}
service pop3-login {
  inet_listener pop3 {
    port = ${pop3Port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service managesieve-login {
  inet_listener sieve {
    port = ${sievePort}
  }
}
service lmtp {
  inet_listener lmtp {
    port = ${lmtpPort}
    address = 127.0.0.1
  }
}
service auth {
  unix_listener auth-smtp-test {
    mode = 0666
  }
}
`,
    beforeStart: async (dir) => {
      await writeSqlUser(t, kind, dir, U, hash, { uid, gid }, 0o666);
      chmodSync(dir, 0o777); // sqlite writes its journal beside the database (sealadm password change, as root)
    },
    rewriteConf: (text, dir) => useSqlUserdb(text, dir, rootMaster),
  });
  const imap = async (t2: TestContext, pw: string) => {
    const c = await ImapLine.open(srv.imapPort);
    t2.after(() => c.close());
    return { c, login: await c.cmd('a', `LOGIN ${U} "${pw}"`) };
  };
  /** IMAP login with `pw`, then the bodies of every message (or the login's failure). */
  const readAll = async (pw: string) => {
    const { c, login } = await imap(t, pw);
    if (!/^a OK /m.test(login)) { c.close(); return login; }
    await c.cmd('b', 'SELECT INBOX');
    const out = login + await c.cmd('c', 'FETCH 1:* BODY[TEXT]');
    c.close();
    return out;
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
  const sieve = async (pw: string) => {
    const c = new ImapLine(net.connect(sievePort, '127.0.0.1'));
    t.after(() => c.close());
    await c.until(/(^|\r\n)OK "[^"\r\n]*"\r\n$/, 'ManageSieve greeting');
    c.sock.write(`AUTHENTICATE "PLAIN" "${Buffer.from(`\0${U}\0${pw}`).toString('base64')}"\r\n`);
    const r = await c.until(/(^|\r\n)(OK|NO|BYE)[^\r\n]*\r\n$/, 'AUTHENTICATE reply');
    c.close();
    return r;
  };
  const sealadm = (args: string[], input?: string) => spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, ...args], { encoding: 'utf8', timeout: 60_000, input });
  /** SMTP AUTH's path: Postfix's AUTH PLAIN over the auth client protocol on the socket smtpd_sasl_path names; the reply line. */
  const smtpAuth = (pw: string) => new Promise<string>((resolve, reject) => {
    const c = net.connect(join(srv.dir, 'base', 'auth-smtp-test'));
    t.after(() => c.destroy());
    let buf = '';
    let asked = false;
    c.on('connect', () => c.write('VERSION\t1\t2\nCPID\t4242\n'));
    c.on('data', (d) => {
      buf += d;
      if (!asked && /\nDONE\n/.test(buf)) {
        asked = true;
        buf = '';
        c.write(`AUTH\t1\tPLAIN\tservice=smtp\tnologin\tresp=${Buffer.from(`\0${U}\0${pw}`).toString('base64')}\n`);
      }
      const m = asked ? /^(OK|FAIL)\t1[^\n]*\n/m.exec(buf) : null;
      if (m) { c.destroy(); resolve(m[0]); }
    });
    c.on('error', reject);
  });
  const store = () => join(srv.home(U), 'sealmail-app-passwords');
  return { srv, pop3Port, imap, readAll, deliver, sieve, sealadm, smtpAuth, store };
}

for (const [kind, rootMaster] of [['sqlite', false], ['sqlite', true], ['mysql', false], ['pgsql', false]] as const) {
  const name = `${kind} userdb, ${rootMaster ? 'root master (no mail_uid)' : 'pools (mail_uid)'}`;
  test(`app passwords, ${name}: add, log in everywhere with it and read encrypted mail, wrong one refused, survives a main password change, revoke`, { skip: rootMaster && !root ? 'needs root' : false }, async (t) => {
    if (!requireDb(t, kind)) return;
    const s = await start(t, rootMaster, kind);
    const first = await s.imap(t, MAIN); // makes the user key under the main password
    assert.match(first.login, /^a OK /m, s.srv.output());
    first.c.close();
    assert.match(await s.deliver('secret'), /^250 /m, s.srv.output());

    const add = s.sealadm(['app-password', 'add', '-u', U, '-n', 'phone'], `${MAIN}\n`);
    assert.equal(add.status, 0, add.stdout + add.stderr);
    const [, id] = /^App password ([0-9a-f]{8}) \(phone\) for .* \(1 mail-crypt key\(s\) copied\)/m.exec(add.stdout) ?? [];
    assert.ok(id, add.stdout);
    const app = add.stdout.trim().split('\n').pop()!;
    assert.match(app, /^[a-z2-9]{4}(-[a-z2-9]{4}){4}$/);
    const list0 = s.sealadm(['app-password', 'list', '-u', U]);
    assert.equal(list0.status, 0, list0.stderr);
    assert.match(list0.stdout, new RegExp(`^${id} +phone +\\d{4}-\\d\\d-\\d\\dT[^ ]+ +never *$`, 'm'), list0.stdout);
    assert.ok(!list0.stdout.includes(app) && !readFileSync(s.store(), 'utf8').includes(app), 'the password itself is stored nowhere');

    // IMAP: the app password logs in and opens its own copy of the key
    const viaApp = await s.readAll(app);
    assert.doesNotMatch(viaApp, /ALERT/, viaApp);
    assert.match(viaApp, /secret body/, viaApp + s.srv.output());
    // POP3, ManageSieve, SMTP AUTH (the auth socket)
    const pop = await pop3Script(s.pop3Port, [`AUTH PLAIN ${Buffer.from(`\0${U}\0${app}`).toString('base64')}`, 'RETR 1', 'QUIT']);
    assert.match(pop[1], /^\+OK/, pop.join('') + s.srv.output());
    assert.match(pop[2], /secret body/, pop.join(''));
    assert.match(await s.sieve(app), /(^|\r\n)OK/);
    assert.match(await s.smtpAuth(app), /^OK\t1\tuser=ann@example\.org/);
    const list1 = s.sealadm(['app-password', 'list', '-u', U]);
    assert.match(list1.stdout, new RegExp(`^${id} +phone +[^ ]+ +\\d{4}-\\d\\d-\\d\\dT`, 'm'), 'last use noted');

    // a wrong app password: refused as a wrong password is, nothing written
    const before = readFileSync(s.store(), 'utf8');
    const dict = readFileSync(join(s.srv.home(U), 'Maildir', 'dovecot-attributes'), 'utf8');
    const wrong = app.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
    assert.match((await s.imap(t, wrong)).login, /^a NO \[AUTHENTICATIONFAILED\]/m);
    assert.match(await s.sieve(wrong), /(^|\r\n)NO/);
    assert.match(await s.smtpAuth(wrong), /^FAIL\t1/);
    assert.equal(readFileSync(s.store(), 'utf8'), before);
    assert.equal(readFileSync(join(s.srv.home(U), 'Maildir', 'dovecot-attributes'), 'utf8'), dict);

    // the main password changes: the app password keeps working (its own copy of the same key)
    const ch = s.sealadm(['password', 'change', '-u', U], `${MAIN}\n${MAIN2}\n${MAIN2}\n`);
    assert.equal(ch.status, 0, ch.stdout + ch.stderr);
    assert.match(await s.readAll(MAIN2), /secret body/);
    assert.match(await s.readAll(app), /secret body/, s.srv.output());
    assert.match(await s.readAll(MAIN), /^a NO /m);

    // revoke: the copy is gone, the next login fails
    const rv = s.sealadm(['app-password', 'revoke', '-u', U, id]);
    assert.equal(rv.status, 0, rv.stdout + rv.stderr);
    assert.ok(!readFileSync(s.store(), 'utf8').includes(id), 'record and key copy removed');
    assert.match((await s.imap(t, app)).login, /^a NO \[AUTHENTICATIONFAILED\]/m);
    assert.match(await s.smtpAuth(app), /^FAIL\t1/);
    assert.equal(s.sealadm(['app-password', 'revoke', '-u', U, id]).status, 65, 'revoking twice is an error');
    assert.match(await s.readAll(MAIN2), /secret body/, 'the main password is untouched');

    assert.doesNotMatch(s.srv.output(), new RegExp(`${app}|${MAIN}|${MAIN2}`), 'no password in the log');
    assert.match(s.srv.output(), new RegExp(`logged in with app password ${id} \\(phone\\)`));
    assert.ok(existsSync(s.store()));
  });
}
