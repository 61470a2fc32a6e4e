/**
 * `sealadm mailbox cryptokey encrypt-existing` / `decrypt-existing` against
 * the real Dovecot 2.3 on one Maildir: plaintext mail written by Dovecot
 * (flags and keywords set by Dovecot, so its file names) is encrypted with the
 * public keys only; Dovecot (mail_crypt) then fetches every message
 * byte-identical with the same UIDs, flags, keywords, dates and sizes, and
 * so does Sealmail; file names and mtimes are unchanged. A run killed with
 * SIGKILL mid-message completes on the rerun with nothing lost or doubled; a
 * message Dovecot renames (flag change) or expunges exactly before its swap
 * (a test hook, no race) is reported and skipped, nothing lost; a
 * decrypt-existing (with the password) turns it all back, and a wrong
 * password changes nothing. Files the zlib plugin compressed are encrypted
 * as stored and Dovecot (zlib + mail_crypt) reads them, and back.
 * IMAP sessions of both servers open during the run get no untagged news
 * and fetch the same UIDs, flags, sizes, dates and bodies afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot } from '../helpers/dovecot.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../helpers/mail-crypt.js';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { spawnOwned } from '../helpers/children.js';
import { ImapLine } from '../helpers/imap-line.js';
import { startSealmail } from '../helpers/sealmail-server.js';

const PW = 'Pässwort-7';
const U = 'ann@example.org';
const MAGIC = Buffer.from('435259505445440307', 'hex');
const MSG = (n: number, crlf = false) => {
  const m = `From: s@example.org\nTo: ${U}\nSubject: old mail ${n} \u00e9\nMessage-ID: <m${n}@example.org>\nDate: Mon, 2 Mar 2020 10:0${n % 10}:00 +0000\n\nsecret body ${n}\n${'plaintext line\n'.repeat(n * 37)}`;
  return crlf ? m.replace(/\n/g, '\r\n') : m;
};

test('encrypt-existing / decrypt-existing with the real Dovecot reading the result', async (t) => {
  const dv = setupDovecot(t, { start: true, extraConf: CRYPT_CONF });
  if (!dv) return;
  const pwOpt = ['-o', `plugin/mail_crypt_private_password=${PW}`];
  type Run = { stdout: string; stderr: string; status: number | null; signal?: NodeJS.Signals | null };
  const S = (args: string[], env: Record<string, string> = {}, input = ''): Run =>
    spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { input, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  const D = (args: string[], input?: string) => dv.doveadm(args, input);
  const ok = (r: Run, what: string) => assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
  const maildir = join(dv.home(U), 'Maildir');
  const boxes = { INBOX: maildir, Archive: join(maildir, '.Archive') };
  const files = () => Object.entries(boxes).flatMap(([b, dir]) => ['new', 'cur'].flatMap((sub) => readdirSync(join(dir, sub)).sort().map((f) => ({ b, sub, f, path: join(dir, sub, f) }))));
  // names, and mtimes to the second (Dovecot's INTERNALDATE); sub-second parts are compared by sameMtimes
  const snapshot = () => files().map((x) => `${x.b}/${x.sub}/${x.f} ${Math.floor(statSync(x.path).mtimeMs / 1000)}`);
  const mtimes = () => new Map(files().map((x) => [x.f, statSync(x.path).mtimeMs]));
  const sameMtimes = (a: Map<string, number>) => { for (const [f, ms] of mtimes()) assert.ok(Math.abs(ms - a.get(f)!) < 0.01, `${f}: mtime ${ms} vs ${a.get(f)}`); };
  const encrypted = (p: string) => readFileSync(p).subarray(0, MAGIC.length).equals(MAGIC);
  const FIELDS = 'mailbox uid guid flags date.received date.sent size.physical size.virtual text';
  const dovecotView = () => { const r = D([...pwOpt, '-f', 'flow', 'fetch', '-u', U, FIELDS, 'mailbox', '*', 'all']); ok(r, 'doveadm fetch'); return r.stdout; };
  const uidOf = (box: string, uid: number): string => {
    const line = readFileSync(join(boxes[box as keyof typeof boxes], 'dovecot-uidlist'), 'utf8').split('\n').find((l) => l.startsWith(`${uid} `))!;
    return line.slice(line.indexOf(':') + 1);
  };

  // keys first (needs the password once), then plaintext mail written by Dovecot itself (save version 0)
  ok(D([...pwOpt, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'doveadm cryptokey generate');
  ok(D(['mailbox', 'create', '-u', U, 'Archive']), 'doveadm mailbox create');
  for (let n = 1; n <= 6; n++) ok(D(['-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U], MSG(n, n === 2)), `doveadm save ${n}`);
  for (let n = 7; n <= 9; n++) ok(D(['-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U, '-m', 'Archive'], MSG(n)), `doveadm save ${n}`);
  ok(D(['flags', 'add', '-u', U, '\\Seen $Work Important', 'mailbox', 'INBOX', 'uid', '1:2']), 'flags add');
  ok(D(['flags', 'add', '-u', U, '\\Flagged \\Answered', 'mailbox', 'INBOX', 'uid', '3']), 'flags add');
  ok(D(['flags', 'add', '-u', U, '\\Seen $Later', 'mailbox', 'Archive', 'uid', '2']), 'flags add');
  const before = dovecotView();
  assert.match(before, /uid=1 [^\n]*flags=\\Seen [^\n]*\$Work Important/);
  assert.match(before, /mailbox=Archive uid=2 [^\n]*flags=\\Seen [^\n]*\$Later/);
  const names = snapshot();
  const times = mtimes();
  assert.ok(files().every((x) => !encrypted(x.path)), 'Dovecot wrote plaintext');

  // mail_crypt not enabled for the user: refused, nothing touched
  let r = S(['-o', 'mail_plugins=', 'mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  assert.equal(r.status, 65, r.stdout + r.stderr);
  assert.equal(r.stderr, `Error: user ${U}: mail_crypt is not in mail_plugins for this user: enable it first\n`);
  assert.deepEqual(snapshot(), names);

  // a run killed with SIGKILL before the swap of its third message (new bytes written, not renamed in)
  const hook = join(dv.dir, 'hook.sh');
  const counter = join(dv.dir, 'hook.count');
  writeFileSync(hook, `#!/bin/sh\nn=$(cat "${counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${counter}"\n[ "$n" = 3 ] && kill -9 $PPID\nexit 0\n`);
  chmodSync(hook, 0o755);
  r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U], { SEALMAIL_RECODE_TEST_HOOK: hook });
  assert.equal(r.signal, 'SIGKILL', `killed: ${r.stdout}${r.stderr}`);
  assert.equal(files().filter((x) => encrypted(x.path)).length, 2, 'two messages done before the kill');
  const tmpFiles = () => Object.values(boxes).flatMap((d) => readdirSync(join(d, 'tmp')));
  assert.equal(tmpFiles().filter((f) => f.startsWith('sealmail-recode.')).length, 2, 'the killed run left its hold link and new file');

  // the rerun (no password anywhere: public keys only) completes and cleans up
  r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  ok(r, 'encrypt-existing rerun');
  assert.equal(r.stdout, `${U}: 7 encrypted, 2 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);
  assert.deepEqual(tmpFiles(), [], 'no leftovers in tmp/');
  assert.ok(files().every((x) => encrypted(x.path)), 'every file is now a mail-crypt container');
  assert.deepEqual(snapshot(), names, 'same file names (UIDs, flags, S=/W=) and mtimes');
  sameMtimes(times);
  assert.doesNotMatch(spawnSync('grep', ['-rl', 'secret body', maildir], { encoding: 'utf8' }).stdout, /./, 'no plaintext left in the Maildir');
  assert.equal(dovecotView(), before, 'Dovecot reads every message byte-identical, same UIDs/flags/dates/sizes');
  // Sealmail reads them too
  const seal = S([...pwOpt, '-f', 'flow', 'fetch', '-u', U, 'mailbox uid flags text', 'mailbox', '*', 'all']);
  ok(seal, 'sealadm fetch');
  const dv2 = D([...pwOpt, '-f', 'flow', 'fetch', '-u', U, 'mailbox uid flags text', 'mailbox', '*', 'all']);
  assert.equal(seal.stdout, dv2.stdout);
  // run again: nothing to do
  r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  ok(r, 'third run');
  assert.equal(r.stdout, `${U}: 0 encrypted, 9 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);

  // mid-run changes by Dovecot, at exactly the moment before a swap: a flag change (rename) and an
  // expunge; messages 10, 11, 12 get INBOX UIDs 7, 8, 9
  for (let n = 10; n <= 12; n++) ok(D(['-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U], MSG(n)), `doveadm save ${n}`);
  const renamed = uidOf('INBOX', 8);
  const expunged = uidOf('INBOX', 9);
  const doveadm = spawnSync('sh', ['-c', 'command -v doveadm'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(hook, `#!/bin/sh
case "$2" in
  *"${renamed}"*) "${doveadm}" -c "${dv.conf}" flags add -u "${U}" '\\Deleted' mailbox INBOX uid 8 ;;
  *"${expunged}"*) "${doveadm}" -c "${dv.conf}" expunge -u "${U}" mailbox INBOX uid 9 ;;
esac
exit 0
`);
  r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U], { SEALMAIL_RECODE_TEST_HOOK: hook });
  assert.equal(r.status, 75, r.stderr);
  assert.equal(r.stdout, `${U}: 1 encrypted, 9 already encrypted, 1 expunged meanwhile, 1 left as they were, 0 failed\n`);
  assert.match(r.stderr, new RegExp(`INBOX: (new|cur)/${renamed.replace(/[.]/g, '\\.')}[^\\n]*: skipped: renamed by another session meanwhile`));
  assert.match(r.stderr, new RegExp(`INBOX: (new|cur)/${expunged.replace(/[.]/g, '\\.')}[^\\n]*: skipped: expunged by another session meanwhile`));
  const now8 = files().filter((x) => x.f.startsWith(renamed));
  assert.equal(now8.length, 1, 'one file for the renamed message, no duplicate');
  assert.match(now8[0].f, /:2,[A-Z]*T/, 'with the flag Dovecot set');
  assert.ok(!encrypted(now8[0].path), 'left as it was');
  assert.equal(files().filter((x) => x.f.startsWith(expunged)).length, 0, 'the expunged message stays expunged');
  assert.deepEqual(tmpFiles(), []);
  r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  ok(r, 'rerun after the changes');
  assert.equal(r.stdout, `${U}: 1 encrypted, 10 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);
  const withNew = dovecotView();
  assert.match(withNew, /uid=8 [^\n]*flags=[^\n]*\\Deleted/);
  assert.deepEqual(withNew.match(/secret body 1[0-2]/g), ['secret body 10', 'secret body 11'], 'messages 10 and 11 once each, 12 expunged');

  // the reverse: a wrong password changes nothing; the right one decrypts everything
  const encBefore = snapshot();
  const encTimes = mtimes();
  r = S(['-o', 'plugin/mail_crypt_private_password=wrong', 'mailbox', 'cryptokey', 'decrypt-existing', '-u', U]);
  assert.equal(r.status, 65, r.stderr);
  assert.match(r.stderr, /Error: user ann@example\.org: /);
  assert.ok(files().every((x) => encrypted(x.path)));
  // the password on stdin (no terminal), as an admin script would give it
  r = S(['mailbox', 'cryptokey', 'decrypt-existing', '-u', U], {}, `${PW}\n`);
  ok(r, 'decrypt-existing');
  assert.equal(r.stdout, `${U}: 11 decrypted, 0 already decrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);
  assert.ok(files().every((x) => !encrypted(x.path)), 'every file is plaintext again');
  assert.deepEqual(snapshot(), encBefore, 'same names and mtimes');
  sameMtimes(encTimes);
  assert.equal(dovecotView(), withNew, 'Dovecot reads the same messages');
});

/** Both IMAP sessions' view of INBOX that must not change: UIDs, flags, sizes, dates, bodies. */
const VIEW = 'UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])';
/** A reply without its tagged status line (Dovecot's carries timings). */
const untagged = (reply: string) => { assert.match(reply, /\r\n[a-z] OK [^\r\n]*\r\n$|^[a-z] OK [^\r\n]*\r\n$/); return reply.replace(/(^|\r\n)[a-z] OK [^\r\n]*\r\n$/, '$1'); };

test('IMAP sessions open during encrypt-existing see no change (Dovecot and Sealmail)', async (t) => {
  // Dovecot's imap, a session opened before the run (PREAUTH through doveadm exec, on real pipes)
  const dv = setupDovecot(t, { start: true, extraConf: CRYPT_CONF });
  if (!dv) return;
  const pwOpt = ['-o', `plugin/mail_crypt_private_password=${PW}`];
  const ok = (r: { status: number | null; stdout: string; stderr: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
  ok(dv.doveadm([...pwOpt, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'generate');
  for (let n = 1; n <= 3; n++) ok(dv.doveadm(['-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U], MSG(n)), 'save');
  ok(dv.doveadm(['flags', 'add', '-u', U, '\\Seen $Work', 'mailbox', 'INBOX', 'uid', '2']), 'flags');
  const child = spawnOwned(t, 'sh', ['-c', 'cat | "$0" -c "$1" exec imap -u "$2" -o "$3" | cat', 'doveadm', dv.conf, U, `plugin/mail_crypt_private_password=${PW}`], { stdio: ['pipe', 'pipe', 'ignore'] });
  const dsess = new ImapLine(Duplex.from({ readable: child.stdout!, writable: child.stdin! }) as unknown as Socket);
  await dsess.until(/^\* PREAUTH .*\r\n/, 'PREAUTH');
  await dsess.cmd('a', 'SELECT INBOX');
  const dBefore = await dsess.cmd('b', VIEW);
  assert.match(dBefore, /secret body 3/);

  // Sealmail's imap, logged in over TCP before the run, on its own Maildir tree
  const srv = await startSealmail(t, { extraConf: CRYPT_CONF, passdb: CRYPT_PASSDB });
  const S = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, ...args], { encoding: 'utf8', timeout: 120_000 });
  ok(S(['-o', 'plugin/mail_crypt_private_password=pass', 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'sealadm generate');
  for (let n = 1; n <= 3; n++) ok(spawnSync(process.execPath, [sealadmJs, '-c', srv.conf, '-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U], { input: MSG(n), encoding: 'utf8' }), 'sealadm save');
  const ssess = await ImapLine.open(srv.imapPort);
  t.after(() => ssess.close());
  assert.match(await ssess.cmd('a', `LOGIN ${U} pass`), /^a OK /m);
  await ssess.cmd('b', 'SELECT INBOX');
  assert.match(await ssess.cmd('c', 'STORE 2 +FLAGS (\\Seen $Work)'), /^c OK /m);
  const sBefore = await ssess.cmd('d', VIEW);
  assert.match(sBefore, /secret body 3/);

  const r1 = spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, 'mailbox', 'cryptokey', 'encrypt-existing', '-u', U], { encoding: 'utf8' });
  ok(r1, 'encrypt-existing (Dovecot tree)');
  assert.equal(r1.stdout, `${U}: 3 encrypted, 0 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);
  const r2 = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  ok(r2, 'encrypt-existing (Sealmail tree)');
  assert.equal(r2.stdout, `${U}: 3 encrypted, 0 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);

  // no untagged news (no EXPUNGE, EXISTS or FETCH), and the same answer byte for byte
  assert.equal(untagged(await dsess.cmd('c', 'NOOP')), '');
  assert.equal(untagged(await dsess.cmd('d', VIEW)), untagged(dBefore));
  assert.equal(untagged(await ssess.cmd('e', 'NOOP')), '');
  assert.equal(untagged(await ssess.cmd('f', VIEW)), untagged(sBefore));

  // on a terminal: the progress bar on stderr, then the summary (script(1) gives it a pty)
  const tty = spawnSync('script', ['-qec', `"${process.execPath}" "${sealadmJs}" -c "${srv.conf}" mailbox cryptokey encrypt-existing -u ${U}`, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(tty.status, 0, tty.stdout);
  assert.match(tty.stdout, /\r\[#{30}\] 3\/3 messages/);
  assert.match(tty.stdout, /: 0 encrypted, 3 already encrypted, 0 expunged meanwhile/);
});

test('zlib-compressed plaintext: encrypted as stored, read by Dovecot with zlib + mail_crypt, and back', async (t) => {
  const dv = setupDovecot(t, { start: true, extraConf: `${CRYPT_CONF}mail_plugins = $mail_plugins zlib\nplugin {\n  zlib_save = gz\n}\n` });
  if (!dv) return;
  const pwOpt = ['-o', `plugin/mail_crypt_private_password=${PW}`];
  const ok = (r: { status: number | null; stdout: string; stderr: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
  const S = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 120_000 });
  ok(dv.doveadm([...pwOpt, 'mailbox', 'cryptokey', 'generate', '-u', U, '-U']), 'generate');
  for (let n = 1; n <= 2; n++) ok(dv.doveadm(['-o', 'plugin/mail_crypt_save_version=0', 'save', '-u', U], MSG(n)), 'save gz');
  ok(dv.doveadm(['-o', 'plugin/mail_crypt_save_version=0', '-o', 'plugin/zlib_save=', 'save', '-u', U], MSG(3)), 'save plain');
  const dir = join(dv.home(U), 'Maildir', 'new');
  const heads = () => readdirSync(dir).sort().map((f) => readFileSync(join(dir, f)).subarray(0, 2).toString('hex'));
  assert.deepEqual(heads(), ['1f8b', '1f8b', '4672'], 'two gzip files and a plain one, as Dovecot wrote them');
  const FIELDS = 'uid flags date.received size.physical size.virtual text';
  type Run = (args: string[]) => { status: number | null; stdout: string; stderr: string };
  const view = (run: Run) => { const r = run([...pwOpt, '-f', 'flow', 'fetch', '-u', U, FIELDS, 'all']); ok(r, 'fetch'); return r.stdout; };
  const before = view((a) => dv.doveadm(a));
  assert.match(before, /secret body 2/);

  let r = S(['mailbox', 'cryptokey', 'encrypt-existing', '-u', U]);
  ok(r, 'encrypt-existing');
  assert.equal(r.stdout, `${U}: 3 encrypted, 0 already encrypted, 0 expunged meanwhile, 0 left as they were, 0 failed\n`);
  assert.deepEqual(heads(), ['4352', '4352', '4352']);
  assert.equal(view((a) => dv.doveadm(a)), before, 'Dovecot decrypts, then decompresses');
  assert.equal(view(S), before, 'so does Sealmail');

  r = S([...pwOpt, 'mailbox', 'cryptokey', 'decrypt-existing', '-u', U]);
  ok(r, 'decrypt-existing');
  assert.deepEqual(heads(), ['1f8b', '1f8b', '4672'], 'compressed again as before');
  assert.equal(view((a) => dv.doveadm(a)), before);
});
