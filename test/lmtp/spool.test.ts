/**
 * LMTP keeps a message being received in a spool, as Dovecot's lmtp does
 * (issue 13 item 8), against a real Sealmail over TCP: past 128 kB the DATA
 * or BDAT bytes go to a file under mail_temp_dir that is unlinked at once
 * (only the server's descriptor names it: /proc/<pid>/fd shows it
 * "(deleted)"), mode 0600, never holding the plaintext (the spool is
 * encrypted with a per-transaction key), and closed after the delivery or
 * when the client drops mid-DATA; a server killed mid-DATA leaves no file.
 * Big messages arrive byte-identical for a
 * plain and a mail-crypt user (read back over IMAP), and ten concurrent
 * 30 MB deliveries keep the server's peak RSS (VmHWM) bounded.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startSealmail, type SealmailServer } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { mailIds } from '../helpers/dovecot.js';
import { lmtpDeliver, markerMessage } from '../helpers/lmtp-kill.js';
import { LmtpWire, until } from '../helpers/lmtp-wire.js';

const USER = 'john@example.org';
const PW = 'summersun';
const CRYPT = `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
}
`;

interface Lmtp { srv: SealmailServer; port: number; spoolDir: string }

async function server(t: TestContext, crypt: boolean, extra = ''): Promise<Lmtp> {
  const port = await freePort();
  let spoolDir = '';
  const srv = await startSealmail(t, {
    passdb: `passdb {\n  driver = static\n  args = password=${PW} userdb_mail_crypt_private_password=%w\n}`,
    beforeStart: (dir) => {
      spoolDir = join(dir, 'spool');
      mkdirSync(spoolDir);
      if (process.getuid?.() === 0) chownSync(spoolDir, mailIds().uid, mailIds().gid);
    },
    extraConf: `protocols = imap lmtp\n${crypt ? CRYPT : ''}mail_temp_dir = %SPOOL%\n${extra}service lmtp {\n  inet_listener lmtp {\n    port = ${port}\n  }\n}\n`,
    rewriteConf: (text, dir) => text.replace('%SPOOL%', join(dir, 'spool')),
  });
  if (crypt) {
    // the first login makes the user's key pair; deliveries then use its public key
    const c = await imap(srv);
    await c.logout();
  }
  return { srv, port, spoolDir };
}

async function imap(srv: SealmailServer): Promise<ImapFlow> {
  for (let i = 0; ; i++) {
    const c = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: USER, pass: PW }, logger: false, tls: { rejectUnauthorized: false } });
    try { await c.connect(); return c; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
  }
}

/** Every message of INBOX as IMAP returns it. */
async function inbox(srv: SealmailServer): Promise<Buffer[]> {
  const c = await imap(srv);
  const out: Buffer[] = [];
  const lock = await c.getMailboxLock('INBOX');
  try {
    if ((c.mailbox as { exists: number }).exists) for await (const m of c.fetch('1:*', { source: true })) out.push(m.source!);
  } finally { lock.release(); }
  await c.logout();
  return out;
}

/**
 * The process that serves LMTP: the master's child started as `--service lmtp`
 * (service-processes.ts; the master itself serves no client).
 */
function lmtpPid(master: number): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))![1]);
      if (ppid === master && readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').includes('--service lmtp')) return Number(d);
    } catch { /* gone meanwhile */ }
  }
  throw new Error(`no LMTP service process under ${master}`);
}

/** The LMTP process's open descriptors on files under `dir`: [fd path, target]. */
function spoolFds(master: number, dir: string): [string, string][] {
  const out: [string, string][] = [];
  const pid = lmtpPid(master);
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    if (target.startsWith(`${dir}/`)) out.push([`/proc/${pid}/fd/${fd}`, target]);
  }
  return out;
}

/** Greeting, LHLO, MAIL and RCPT on a raw connection. */
async function begin(port: number, rcpt = USER): Promise<LmtpWire> {
  const c = new LmtpWire(port);
  await c.hello();
  await c.send('MAIL FROM:<sender@example.net>\r\n', /^250 .*\r\n/m);
  await c.send(`RCPT TO:<${rcpt}>\r\n`, /^250 .*\r\n/m);
  return c;
}

const MARKER = 'SPOOL-PLAINTEXT-MARKER';

/** A message of about `size` bytes whose lines carry MARKER, CRLF line ends, some dot-stuffed lines. */
function bigMessage(tag: string, size: number): Buffer {
  const head = `From: sender@example.net\r\nTo: ${USER}\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@spool.test>\r\n\r\n`;
  const lines: string[] = [];
  let n = head.length;
  for (let i = 0; n < size; i++) {
    const l = i % 97 === 0 ? `.dot-stuffed line ${i} ${MARKER}\r\n` : `line ${i} ${MARKER} ${'x'.repeat(i % 50)}\r\n`;
    lines.push(l);
    n += l.length;
  }
  return Buffer.from(head + lines.join('') + `END ${tag}\r\n`);
}
const dotStuff = (m: Buffer): Buffer => Buffer.from(m.toString('latin1').replace(/^\./gm, '..'), 'latin1');

/** The stored message (as IMAP gives it) is Dovecot's added headers and then the sent message, byte for byte. */
function assertStoredAs(stored: Buffer, sent: Buffer): void {
  assert.match(stored.subarray(0, 200).toString('latin1'), /^Return-Path: <sender@example\.net>\r\n/);
  assert.equal(stored.length > sent.length, true, 'stored message shorter than the one sent');
  assert.ok(stored.subarray(stored.length - sent.length).equals(sent), 'stored message differs from the one sent');
  const addedEnd = stored.indexOf('\r\nFrom: sender@example.net\r\n');
  assert.equal(addedEnd + 2, stored.length - sent.length, 'only the Return-Path/Delivered-To/Received headers added');
}

for (const mode of ['plain', 'mail-crypt'] as const) {
  test(`${mode}: DATA and BDAT past 128 kB go through an unlinked, 0600, encrypted spool file and arrive byte-identical`, async (t) => {
    const { srv, port, spoolDir } = await server(t, mode === 'mail-crypt');
    const msg = bigMessage(`big-${mode}`, 3 * 1024 * 1024);
    const c = await begin(port);
    t.after(() => c.sock.destroy());
    await c.send('DATA\r\n', /^354 .*\r\n/m);
    const wire = dotStuff(msg);
    const half = wire.indexOf('\r\n', wire.length >> 1) + 2;
    c.sock.write(wire.subarray(0, half));
    // mid-DATA: the spool is an open descriptor on a file that has no name any more
    const [fdPath, target] = (await until('a spool file descriptor', () => spoolFds(srv.pid, spoolDir).find(([, tg]) => tg.endsWith(' (deleted)'))))!;
    assert.match(target, new RegExp(`^${spoolDir}/dovecot\\.lmtp\\.[^/]+\\.${lmtpPid(srv.pid)}\\.[0-9a-f]{16} \\(deleted\\)$`));
    assert.deepEqual(readdirSync(spoolDir), [], 'the spool file is unlinked at once');
    assert.equal(statSync(fdPath).mode & 0o777, 0o600);
    await until('spooled bytes', () => statSync(fdPath).size > 1024 * 1024);
    const onDisk = readFileSync(fdPath);
    assert.ok(onDisk.length > 1024 * 1024);
    assert.equal(onDisk.indexOf(MARKER), -1, 'the spool holds the plaintext');
    assert.equal(onDisk.indexOf('line 1'), -1, 'the spool holds the plaintext');
    c.sock.write(Buffer.concat([wire.subarray(half), Buffer.from('.\r\n')]));
    await c.expect(/^250 2\.0\.0 <john@example\.org> \S+ Saved\r\n/m, 60_000);
    await until('the spool closed', () => spoolFds(srv.pid, spoolDir).length === 0);

    // BDAT: two chunks, a CRLF split between them
    const msg2 = bigMessage(`bdat-${mode}`, 1024 * 1024);
    const cut = msg2.indexOf('\r\n', msg2.length >> 1) + 1;
    await c.send('MAIL FROM:<sender@example.net>\r\n', /^250 .*\r\n/m);
    await c.send(`RCPT TO:<${USER}>\r\n`, /^250 .*\r\n/m);
    await c.send(Buffer.concat([Buffer.from(`BDAT ${cut}\r\n`), msg2.subarray(0, cut)]), /^250 2\.0\.0 Added \d+ octets\r\n/m);
    const [fd2] = (await until('a BDAT spool file descriptor', () => spoolFds(srv.pid, spoolDir)[0]))!;
    assert.equal(readFileSync(fd2).indexOf(MARKER), -1, 'the BDAT spool holds the plaintext');
    await c.send(Buffer.concat([Buffer.from(`BDAT ${msg2.length - cut} LAST\r\n`), msg2.subarray(cut)]), /^250 2\.0\.0 <john@example\.org> \S+ Saved\r\n/m);
    await c.send('QUIT\r\n', /^221 /m);
    await until('the BDAT spool closed', () => spoolFds(srv.pid, spoolDir).length === 0);
    assert.deepEqual(readdirSync(spoolDir), []);

    const stored = await inbox(srv);
    assert.equal(stored.length, 2);
    const byTag = (tag: string) => stored.find((m) => m.indexOf(`Subject: ${tag}\r\n`) >= 0)!;
    assertStoredAs(byTag(`big-${mode}`), msg);
    assertStoredAs(byTag(`bdat-${mode}`), msg2);
    if (mode === 'mail-crypt') {
      const maildir = join(srv.home(USER), 'Maildir');
      for (const sub of ['new', 'cur']) for (const f of existsSync(join(maildir, sub)) ? readdirSync(join(maildir, sub)) : []) {
        assert.equal(readFileSync(join(maildir, sub, f)).subarray(0, 7).toString(), 'CRYPTED', f);
      }
    }
  });
}

test('a client that drops mid-DATA leaves no spool behind and nothing stored', async (t) => {
  const { srv, port, spoolDir } = await server(t, false);
  const c = await begin(port);
  t.after(() => c.sock.destroy());
  await c.send('DATA\r\n', /^354 .*\r\n/m);
  c.sock.write(dotStuff(bigMessage('dropped', 2 * 1024 * 1024)).subarray(0, 1024 * 1024 + 17));
  await until('a spool file descriptor', () => spoolFds(srv.pid, spoolDir).length === 1);
  c.sock.destroy();
  await until('the spool closed after the drop', () => spoolFds(srv.pid, spoolDir).length === 0);
  assert.deepEqual(readdirSync(spoolDir), []);
  // the server goes on: a fresh delivery works, and only it is stored
  assert.ok(await lmtpDeliver(port, USER, markerMessage('after-drop', 2048)));
  const stored = await inbox(srv);
  assert.equal(stored.length, 1);
  assert.match(stored[0].toString('latin1'), /after-drop/);
});

test('ten concurrent 30 MB deliveries keep the server\'s peak RSS bounded', async (t) => {
  const { srv, port } = await server(t, false);
  const lmtp = lmtpPid(srv.pid);
  const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${lmtp}/status`, 'utf8'))![1]) / 1024;
  const before = hwm();
  const msgs = Array.from({ length: 10 }, (_, i) => markerMessage(`rss-${i}`, 30 * 1024 * 1024));
  const ok = await Promise.all(msgs.map((m) => lmtpDeliver(port, USER, m, 300_000)));
  assert.deepEqual(ok, Array(10).fill(true), srv.output().slice(-2000));
  const peak = hwm();
  t.diagnostic(`VmHWM ${before.toFixed(0)} MB at start, ${peak.toFixed(0)} MB after 10 × 30 MB (before the spool: ~1240 MB)`);
  // 300 MB of mail in flight; the spool keeps the LMTP process far below that (bench/lmtp.bench.ts has the figure)
  assert.ok(peak < 400, `peak RSS ${peak.toFixed(0)} MB`);
});

test('a server killed mid-DATA leaves nothing in mail_temp_dir', async (t) => {
  const { srv, port, spoolDir } = await server(t, false);
  const c = await begin(port);
  t.after(() => c.sock.destroy());
  await c.send('DATA\r\n', /^354 .*\r\n/m);
  c.sock.write(dotStuff(bigMessage('crash', 2 * 1024 * 1024)).subarray(0, 1024 * 1024));
  await until('a spool file descriptor', () => spoolFds(srv.pid, spoolDir).length === 1);
  // the process holding the spool dies, then the whole server
  process.kill(lmtpPid(srv.pid), 'SIGKILL');
  process.kill(srv.pid, 'SIGKILL');
  await srv.stop();
  assert.deepEqual(readdirSync(spoolDir), [], 'a spool file outlived the server');
});
