/**
 * POP3 differential test against Debian's dovecot-pop3d: the same Maildir
 * (written, then opened once by Dovecot's pop3 so that its dovecot-uidlist
 * exists, then copied: the state an admin switches from) served by a
 * private Dovecot and by Sealmail, the same session scripts through both,
 * the transcripts compared after masking only the greeting (the banner is
 * login_greeting, set apart). The scripts cover pop3-login (CAPA, unknown
 * commands and the third-strike BYE, USER/PASS with a wrong password,
 * AUTH probe, AUTH PLAIN with and without initial response, "*" abort, bad
 * base64), every TRANSACTION command with good and bad arguments, the
 * UPDATE state (DELE + QUIT expunges, RETR marks \Seen, RSET forgets),
 * pipelining, and the limits (pre-login buffer, 2048-byte lines, 21 bad
 * commands). The UIDLs must be equal: the default %08Xu%08Xv from
 * Dovecot's own dovecot-uidlist, the uidlist's `P` field (a value, and the
 * empty one meaning the base name) and X-UIDL with pop3_reuse_xuidl — a
 * client sees the same UIDLs after the switch and downloads nothing again.
 * The Maildirs must end in the same state (files, flags). A second pair
 * serves a mail-crypt user: sizes and RETR are the plaintext's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../helpers/mail-crypt.js';
import { pop3Script, Pop3Wire } from '../helpers/pop3-client.js';

function chownTree(p: string, uid: number, gid: number): void {
  chownSync(p, uid, gid);
  if (statSync(p).isDirectory()) for (const f of readdirSync(p)) chownTree(join(p, f), uid, gid);
}

/** Messages that exercise the RETR/TOP encoding: bare LF, CRLF, dots, no final newline, header only. */
const MESSAGES: { sub: 'new' | 'cur'; name: string; text: string }[] = [
  { sub: 'cur', name: '1700000001.M1P1.host:2,S', text: 'From: a@example.org\nSubject: one\n\nfirst body\n.leading dot\n..two dots\n.\nlast\n' },
  { sub: 'cur', name: '1700000002.M1P1.host:2,', text: 'From: b@example.org\r\nSubject: crlf\r\nX-UIDL: xuidl-from-header\r\n\r\nline 1\r\nline 2\r\nline 3\r\n' },
  { sub: 'new', name: '1700000003.M1P1.host', text: 'From: c@example.org\nSubject: no final newline\n\nbody without end' },
  { sub: 'new', name: '1700000004.M1P1.host', text: 'From: d@example.org\nSubject: header only\n' },
  { sub: 'cur', name: '1700000005.M1P1.host:2,F', text: 'Subject: stored uidl\n\n' + 'x'.repeat(300) + '\n\n\nafter blank lines\n.\n' },
  { sub: 'new', name: '1700000006.M1P1.host', text: 'Subject: empty stored uidl\n\nbody\n' },
  { sub: 'new', name: '1700000007.M1P1.host', text: 'Subject: same X-UIDL as 2\nX-UIDL: xuidl-from-header\n\nseven\n' },
  // S= (the physical, LF size) in the name: what pop3_fast_size_lookups reports without reading the file
  { sub: 'cur', name: '1700000008.M1P1.host,S=35:2,S', text: 'Subject: physical size\n\nfour\nlines\n' },
];

function writeFixture(maildir: string): void {
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, d), { recursive: true });
  for (const m of MESSAGES) writeFileSync(join(maildir, m.sub, m.name), m.text);
}

/** What a pop3_save_uidl / migration left in dovecot-uidlist: a P field for message 5, an empty one for message 6. */
function addStoredUidls(maildir: string): void {
  const path = join(maildir, 'dovecot-uidlist');
  const lines = readFileSync(path, 'utf8').split('\n').map((l) => {
    if (l.endsWith(':1700000005.M1P1.host')) return l.replace(/^(\d+) /, '$1 Pmigrated-uidl-5 ');
    if (l.endsWith(':1700000006.M1P1.host')) return l.replace(/^(\d+) /, '$1 P ');
    return l;
  });
  writeFileSync(path, lines.join('\n'));
}

/** The files of a Maildir (cur/ and new/), for comparing what both servers left. */
function maildirState(maildir: string): string[] {
  const out: string[] = [];
  for (const sub of ['cur', 'new']) for (const f of readdirSync(join(maildir, sub))) out.push(`${sub}/${f.replace(/,[SW]=\d+/g, '')}`);
  return out.sort();
}

const PLAIN = (u: string, p: string) => Buffer.from(`\0${u}\0${p}`).toString('base64');

function scripts(user: string): { name: string; steps: string[] }[] {
  const n = MESSAGES.length;
  return [
    {
      name: 'pre-login and transaction',
      steps: [
        'CAPA', 'FOO', `USER ${user}`, 'PASS wrong', 'PASS again', 'AUTH', 'AUTH PLAIN', '*', 'AUTH PLAIN', '!!!', 'AUTH PLAIN !!', 'AUTH XYZ',
        'APOP a b', `AUTH PLAIN ${PLAIN(user, 'pass')}`,
        'CAPA', 'STAT', 'LIST', 'LIST 1', 'LIST 99', 'LIST x', 'LIST 1x', 'LIST 0', 'LIST 99999999999', 'UIDL', 'UIDL 2', 'UIDL 5', 'UIDL 6',
        'TOP 1 0', 'TOP 1 2', 'TOP 2 1', 'TOP 3 5', 'TOP 4 0', 'TOP 5 1', 'TOP 1', 'TOP 1 x', 'TOP 1 1x',
        ...Array.from({ length: n }, (_, i) => `RETR ${i + 1}`), 'RETR', 'retr 1',
        'DELE 2', 'DELE 2', 'RETR 2', 'TOP 2 0', 'LIST', 'UIDL', 'STAT', 'RSET', 'STAT', 'NOOP', 'NOOP x', 'LAST', 'XYZ', '',
        'DELE 3', 'DELE 6', 'QUIT',
      ],
    },
    { name: 'after the deletions', steps: [`USER ${user}`, 'PASS pass', 'STAT', 'LIST', 'UIDL', 'RETR 1', 'TOP 3 0', 'QUIT'] },
    { name: 'RETR without QUIT keeps \\Seen, forgets DELE', steps: [`USER ${user}`, 'PASS pass', 'RETR 2', 'DELE 1'] },
    { name: 'state after an aborted session', steps: [`USER ${user}`, 'PASS pass', 'STAT', 'UIDL', 'QUIT'] },
    { name: 'three strikes before login', steps: ['STAT', 'LIST', 'RETR 1', 'CAPA'] },
    { name: 'too many bad commands after login', steps: [`USER ${user}`, 'PASS pass', ...Array.from({ length: 22 }, () => 'BAD') ] },
    { name: 'pre-login line over the input buffer', steps: ['X'.repeat(1032), 'Y'.repeat(1033), 'CAPA'] },
    { name: 'line over 2048 bytes after login', steps: [`USER ${user}`, 'PASS pass', 'N'.repeat(2046), 'N'.repeat(2047), 'STAT'] },
  ];
}

/** Pipelined: every command in one write, the replies read to the end. */
async function pipelined(port: number, user: string): Promise<string> {
  const w = await Pop3Wire.connect(port);
  try {
    w.send(`CAPA\r\nUSER ${user}\r\nPASS pass\r\nSTAT\r\nUIDL\r\nLIST 1\r\nTOP 1 0\r\nNOOP\r\nQUIT\r\n`);
    return (await w.rest()).replace(/^\+OK [^\r]*\r\n/, '+OK <greeting>\r\n');
  } finally { w.close(); }
}

async function bothServers(t: import('node:test').TestContext, opts: { crypt: boolean; extra: string }): Promise<{ dv: Dovecot; seal: SealmailServer; dvPort: number; sealPort: number } | null> {
  const crypt = opts.crypt ? CRYPT_CONF : '';
  const sealPort = await freePort();
  const seal = await startSealmail(t, {
    ...(opts.crypt ? { passdb: CRYPT_PASSDB } : {}),
    rewriteConf: (c) => c.replace(/^protocols = imap$/m, 'protocols = imap pop3'),
    extraConf: `mail_max_userip_connections = 100\n${opts.extra}\nservice pop3-login {\n  inet_listener pop3 {\n    port = ${sealPort}\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\n${crypt}`,
    ready: (o) => o.includes(`:${sealPort} (pop3-login/pop3)`),
  });
  // Dovecot with Sealmail's certificate: both offer STLS
  const dvPort = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'pop3',
    ...(opts.crypt ? { passdb: CRYPT_PASSDB } : {}),
    extraConf: `ssl = yes\nssl_cert = <${seal.dir}/cert.pem\nssl_key = <${seal.dir}/key.pem\nmail_max_userip_connections = 100\nauth_failure_delay = 0\n${opts.extra}\nservice pop3-login {\n  inet_listener pop3 {\n    port = ${dvPort}\n  }\n}\n${crypt}`,
  });
  if (!dv) return null;
  return { dv, seal, dvPort, sealPort };
}

async function compareSessions(t: import('node:test').TestContext, s: NonNullable<Awaited<ReturnType<typeof bothServers>>>, user: string, list = scripts(user)): Promise<void> {
  const { dv, seal } = s;
  const dvMaildir = join(dv.home(user), 'Maildir');
  const sealMaildir = join(seal.home(user), 'Maildir');
  for (const script of list) {
    const theirs = await pop3Script(s.dvPort, script.steps);
    const ours = await pop3Script(s.sealPort, script.steps);
    // the greeting is login_greeting (each server's own); everything else must be Dovecot's
    theirs[0] = ours[0] = '<greeting>';
    if (process.env.POP3_DIFF_OUT) process.stderr.write(`== ${script.name}\n${theirs.join("")}\n`);
    for (let i = 0; i < Math.max(theirs.length, ours.length); i++) {
      assert.equal(ours[i], theirs[i], `${script.name}: reply to ${JSON.stringify(script.steps[i - 1] ?? '<greeting>').slice(0, 60)} differs`);
    }
    // an aborted session: both servers finish with it before the next one looks
    await waitFor(() => maildirState(sealMaildir).join() === maildirState(dvMaildir).join(), () => `${script.name}: Maildirs differ:\nDovecot: ${maildirState(dvMaildir).join(' ')}\nSealmail: ${maildirState(sealMaildir).join(' ')}`);
  }
  assert.equal(await pipelined(s.sealPort, user), await pipelined(s.dvPort, user), 'pipelined session');
  const keywords = (m: string) => { try { return readFileSync(join(m, 'dovecot-keywords'), 'utf8'); } catch { return ''; } };
  assert.equal(keywords(sealMaildir), keywords(dvMaildir), 'dovecot-keywords');
  void t;
}

async function waitFor(cond: () => boolean, what: () => string): Promise<void> {
  for (const end = Date.now() + 20_000; !cond();) {
    if (Date.now() > end) assert.fail(what());
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The state before the switch: Dovecot's pop3 has seen the Maildir once (its uidlist, new/ moved to cur/). */
async function primeAndCopy(s: NonNullable<Awaited<ReturnType<typeof bothServers>>>, user: string): Promise<void> {
  const first = await pop3Script(s.dvPort, [`USER ${user}`, 'PASS pass', 'UIDL', 'QUIT']);
  assert.match(first[2], /^\+OK Logged in\./, first.join(''));
  addStoredUidls(join(s.dv.home(user), 'Maildir'));
  cpSync(s.dv.home(user), s.seal.home(user), { recursive: true, preserveTimestamps: true });
  if (process.getuid?.() === 0) chownTree(s.seal.home(user), s.dv.uid, s.dv.gid);
}

test('POP3 against dovecot-pop3d: same Maildir, same scripts, same replies, same UIDLs, same Maildir after', async (t) => {
  const s = await bothServers(t, { crypt: false, extra: 'protocol pop3 {\n  pop3_reuse_xuidl = yes\n}\n' });
  if (!s) return;
  const user = 'john@example.org';
  writeFixture(join(s.dv.home(user), 'Maildir'));
  if (process.getuid?.() === 0) chownTree(s.dv.home(user), s.dv.uid, s.dv.gid);
  await primeAndCopy(s, user);
  await compareSessions(t, s, user);
});

test('POP3 against dovecot-pop3d for a mail-crypt user: plaintext sizes, decrypted RETR, same UIDLs', async (t) => {
  const s = await bothServers(t, { crypt: true, extra: '' });
  if (!s) return;
  const user = 'crypt@example.org';
  const plain = join(s.dv.dir, 'plain', user);
  writeFixture(join(plain, 'Maildir'));
  if (process.getuid?.() === 0) chownTree(join(s.dv.dir, 'plain'), s.dv.uid, s.dv.gid);
  const r = s.dv.doveadm(['-o', 'plugin/mail_crypt_private_password=pass', 'backup', '-R', '-u', user, `maildir:${plain}/Maildir`]);
  assert.equal(r.status, 0, `doveadm backup -R: ${r.stderr}`);
  // the files are encrypted at rest (MAIL_CRYPT magic), as the user's INBOX is read by both servers
  const cur = join(s.dv.home(user), 'Maildir', 'cur');
  const files = readdirSync(cur);
  assert.ok(files.length > 0 && files.every((f) => readFileSync(join(cur, f)).subarray(0, 4).toString('latin1') === 'CRYP'), 'encrypted on disk');
  await primeAndCopy(s, user);
  await compareSessions(t, s, user);
});

test('POP3 settings against dovecot-pop3d: pop3_deleted_flag, pop3_no_flag_updates, pop3_enable_last, pop3_uidl_format, pop3_uidl_duplicates, pop3_lock_session, pop3_fast_size_lookups', async (t) => {
  const s = await bothServers(t, {
    crypt: false,
    extra: 'protocol pop3 {\n  pop3_reuse_xuidl = yes\n  pop3_deleted_flag = Pop3Deleted\n  pop3_no_flag_updates = yes\n  pop3_enable_last = yes\n  pop3_uidl_format = %f-%08Xv\n  pop3_uidl_duplicates = rename\n  pop3_lock_session = yes\n  pop3_fast_size_lookups = yes\n}\n',
  });
  if (!s) return;
  const user = 'set@example.org';
  writeFixture(join(s.dv.home(user), 'Maildir'));
  if (process.getuid?.() === 0) chownTree(s.dv.home(user), s.dv.uid, s.dv.gid);
  await primeAndCopy(s, user);
  const login = [`USER ${user}`, 'PASS pass'];
  await compareSessions(t, s, user, [
    { name: 'flag instead of expunge, LAST, no \\Seen', steps: [...login, 'UIDL', 'LAST', 'RETR 3', 'LAST', 'DELE 2', 'DELE 4', 'RSET', 'LAST', 'DELE 2', 'QUIT'] },
    { name: 'the flagged message is hidden', steps: [...login, 'STAT', 'LIST', 'UIDL', 'LAST', 'QUIT'] },
  ]);
  // pop3_lock_session: a second session of the user waits for the lock (10 s), then is refused
  const dvMaildir = join(s.dv.home(user), 'Maildir');
  const holders = await Promise.all([s.dvPort, s.sealPort].map(async (port) => {
    const w = await Pop3Wire.connect(port);
    await w.reply(false);
    w.send(`USER ${user}\r\nPASS pass\r\n`);
    await w.reply(false);
    assert.equal(await w.reply(false), '+OK Logged in.\r\n');
    return w;
  }));
  try {
    const [theirs, ours] = await Promise.all([s.dvPort, s.sealPort].map((port) => pop3Script(port, [...login, 'STAT'])));
    theirs[0] = ours[0] = '<greeting>';
    assert.deepEqual(ours, theirs, 'second session while the first holds the lock');
    assert.match(theirs[2], /IN-USE/);
  } finally {
    for (const w of holders) w.close();
  }
  void dvMaildir;
});
