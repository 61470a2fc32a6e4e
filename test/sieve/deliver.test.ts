/**
 * runSieveForDelivery: Pigeonhole's script sequence (sieve_before*, the
 * user's active script behind ~/.dovecot.sieve, sieve_after* directories in
 * name order), keep rules between scripts (compared with sieve-test -s, which
 * runs the same multiscript sequence), a broken script → implicit keep with
 * the error logged, the mtime-keyed compile cache, and vacation replies with
 * their duplicate tracking.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdirSync, symlinkSync, chmodSync, utimesSync, existsSync, readFileSync } from 'node:fs';
import { setupDovecot } from '../helpers/dovecot.js';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { requireTool } from '../helpers/tools.js';
import { parseConfigText } from '../helpers/config-text.js';
import { setLogSink } from '../../src/log/logger.js';
import { runSieveForDelivery, type SieveOutcome } from '../../src/sieve/deliver.js';

const SPAM = Buffer.from('From: spam@bad.example\r\nTo: john@example.org\r\nSubject: Buy\r\nX-Spam-Flag: YES\r\nMessage-ID: <s1@bad.example>\r\n\r\nx\r\n');
const HAM = Buffer.from('From: alice@friends.example\r\nTo: john@example.org\r\nSubject: Hi\r\nMessage-ID: <h1@friends.example>\r\n\r\nhello\r\n');
const ENV = { from: 'alice@friends.example', to: 'john@example.org' };
const SPAM_TO_FOLDER = 'require ["fileinto"];\nif header :contains "X-Spam-Flag" "YES" {\n  fileinto "Junk";\n}\n';

function summary(o: SieveOutcome): string[] {
  return o.actions.map((a) => [a.type, a.mailbox ?? a.address ?? '', (a.flags ?? []).join(' ')].join(':')).sort();
}

async function setup(t: import('node:test').TestContext, extra = '') {
  const dir = tempDir(t, 'sieve-deliver');
  const home = join(dir, 'home');
  mkdirSync(join(home, 'sieve'), { recursive: true });
  mkdirSync(join(dir, 'after'));
  mkdirSync(join(dir, 'before'));
  const config = await parseConfigText(`plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n  sieve_after = ${dir}/after\n${extra}}\n`);
  const user = { username: 'john@example.org', home, fields: [] as [string, string][] };
  const activate = (name: string, src: string) => {
    writeFileSync(join(home, 'sieve', name + '.sieve'), src);
    symlinkSync(`sieve/${name}.sieve`, join(home, '.dovecot.sieve'));
  };
  return { dir, home, config, user, activate };
}

test('ISPmail: sieve_after spam-to-folder files spam into Junk, ham stays in INBOX', async (t) => {
  const s = await setup(t);
  writeFileSync(join(s.dir, 'after', 'spam-to-folder.sieve'), SPAM_TO_FOLDER);
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, SPAM, ENV)), ['fileinto:Junk:']);
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['keep::']);
});

test('sieve_after runs only while keep is in effect; directory scripts run in name order', async (t) => {
  const s = await setup(t);
  writeFileSync(join(s.dir, 'after', 'b.sieve'), 'require ["imap4flags"];\naddflag "\\\\Flagged";\n');
  writeFileSync(join(s.dir, 'after', 'a.sieve'), SPAM_TO_FOLDER);
  writeFileSync(join(s.dir, 'after', 'ignored.txt'), 'not a script');
  s.activate('mine', 'require "fileinto";\nif header :is "Subject" "Hi" { fileinto "Friends"; }\n');
  // ham: the user's fileinto cancels keep → the after scripts do not run
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['fileinto:Friends:']);
  // spam: user script keeps → a.sieve files into Junk → b.sieve does not run
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, SPAM, ENV)), ['fileinto:Junk:']);
});

test('sequence semantics agree with Pigeonhole (sieve-test -s)', async (t) => {
  const sieveTest = requireTool(t, 'sieve-test');
  if (!sieveTest) return;
  const cases: Array<[string, string, string]> = [
    ['stop in first script keeps going', 'stop;\n', SPAM_TO_FOLDER],
    ['discard; stop ends the sequence', 'discard;\nstop;\n', SPAM_TO_FOLDER],
    ['explicit keep continues', 'keep;\n', SPAM_TO_FOLDER],
    ['fileinto :copy continues', 'require ["fileinto","copy"];\nfileinto :copy "Archive";\n', SPAM_TO_FOLDER],
    ['redirect ends the sequence', 'redirect "x@example.net";\n', SPAM_TO_FOLDER],
    ['same folder twice is one store', 'require ["fileinto","copy"];\nfileinto :copy "Junk";\n', SPAM_TO_FOLDER],
  ];
  for (const [name, first, second] of cases) {
    await t.test(name, async (tt) => {
      const s = await setup(tt);
      chmodSync(s.dir, 0o755);
      writeFileSync(join(s.dir, 'before', '1.sieve'), first, { mode: 0o644 });
      writeFileSync(join(s.dir, 'after', '2.sieve'), second, { mode: 0o644 });
      writeFileSync(join(s.dir, 'm.eml'), SPAM, { mode: 0o644 });
      const config = await parseConfigText(`plugin {\n  sieve_before = ${s.dir}/before\n  sieve_after = ${s.dir}/after\n}\n`);
      const ours = summary(await runSieveForDelivery(config, s.user, SPAM, ENV))
        .map((x) => x.replace(/^keep::$/, 'fileinto:INBOX:').replace(/^fileinto:(.*):$/, 'store $1').replace(/^redirect:(.*):$/, 'redirect $1'))
        .filter((x) => x !== 'discard::');
      const root = process.getuid?.() === 0;
      mkdirSync(join(s.dir, 'run'));
      writeFileSync(join(s.dir, 'd.conf'), `mail_uid = ${root ? 65534 : process.getuid!()}\nmail_gid = ${root ? 65534 : process.getgid!()}\nfirst_valid_uid = 1\nmail_location = maildir:${s.dir}/Maildir\nbase_dir = ${s.dir}/run\nlog_path = /dev/stderr\nssl = no\n`);
      const r = spawnSync(sieveTest, ['-c', join(s.dir, 'd.conf'), '-s', join(s.dir, 'before', '1.sieve'), join(s.dir, 'after', '2.sieve'), join(s.dir, 'm.eml')], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      const oracle = [...new Set(r.stdout.split('\n').flatMap((l) => {
        const m = /^ \* store message in folder: (.*)$/.exec(l); if (m) return [`store ${m[1]}`];
        const x = /^ \* redirect message to: <(.*)>$/.exec(l); return x ? [`redirect ${x[1]}`] : [];
      }))].sort();
      assert.deepEqual(ours.sort(), oracle, r.stdout);
    });
  }
});

test('a script with a syntax error: message kept in INBOX, error logged, earlier actions stay', async (t) => {
  const s = await setup(t);
  const lines: string[] = [];
  setLogSink((l) => { lines.push(l); });
  t.after(() => setLogSink(null));
  const config = await parseConfigText(`plugin {\n  sieve_before = ${s.dir}/before\n  sieve_after = ${s.dir}/after\n}\n`);
  writeFileSync(join(s.dir, 'before', 'copy.sieve'), 'require ["fileinto","copy"];\nfileinto :copy "Archive";\n');
  writeFileSync(join(s.dir, 'after', 'spam.sieve'), SPAM_TO_FOLDER);
  s.activate('broken', 'require "fileinto";\nif header :is "x" "y" { fileinto "J" }\n');
  const o = await runSieveForDelivery(config, s.user, SPAM, ENV);
  assert.deepEqual(summary(o), ['fileinto:Archive:', 'keep::']);   // spam.sieve never ran
  assert.deepEqual(o.errors, ["broken: line 2: error: expected end of command ';' or the beginning of a compound block '{', but found '}'."]);
  assert.ok(lines.some((l) => l.includes('lmtp(john@example.org)') && l.includes(`sieve: Failed to compile script \`${s.home}/.dovecot.sieve'`)), lines.join(''));
  assert.match(readFileSync(join(s.home, '.dovecot.sieve.log'), 'utf8'), /broken: line 2: error: expected end of command ';'.*\nbroken: error: parse failed\.\n$/);
});

test('user script compile error: same user logfile and server log line as Pigeonhole (dovecot-lda)', async (t) => {
  const lda = '/usr/lib/dovecot/dovecot-lda';
  if (!existsSync(lda)) { if (process.env.CI === 'true') throw new Error('dovecot-lda missing'); t.skip('dovecot-lda missing'); return; }
  const dv = setupDovecot(t, { start: true, protocols: 'lmtp', extraConf: 'protocol lda {\n  mail_plugins = sieve\n}\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n' });
  if (!dv) return;
  const broken = 'require "fileinto";\nif header :is "x" "y" { fileinto "J" }\nfoo;\n';
  const h = dv.home('john@example.org');
  mkdirSync(join(h, 'sieve'), { recursive: true });
  writeFileSync(join(h, 'sieve', 'broken.sieve'), broken);
  symlinkSync('sieve/broken.sieve', join(h, '.dovecot.sieve'));
  spawnSync('chown', ['-R', `${dv.uid}:${dv.gid}`, h]);
  const r = spawnSync(lda, ['-c', dv.conf, '-d', 'john@example.org', '-f', 'a@b.example'], { input: 'From: a@b.example\nSubject: x\n\nhi\n', encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const oracleLog = readFileSync(join(h, '.dovecot.sieve.log'), 'utf8');
  const oracleLine = /Info: (sieve: Failed to compile script .*)$/m.exec(dv.log())![1];

  const s = await setup(t);
  s.activate('broken', broken);
  const lines: string[] = [];
  setLogSink((l) => { lines.push(l); });
  t.after(() => setLogSink(null));
  await runSieveForDelivery(s.config, s.user, HAM, ENV);
  const ours = readFileSync(join(s.home, '.dovecot.sieve.log'), 'utf8');
  const stamp = (x: string) => x.replace(/started log at [^\n]*\./, 'started log at <time>.');
  assert.equal(stamp(ours), stamp(oracleLog));
  const ourLine = lines.map((l) => /Info: (sieve: Failed to compile script .*)$/m.exec(l.trimEnd())?.[1]).find(Boolean)!;
  assert.equal(ourLine.replaceAll(s.home, '~'), oracleLine.replaceAll(h, '~'));
});

test('compiled scripts are cached but a changed script is recompiled', async (t) => {
  const s = await setup(t);
  s.activate('mine', 'require "fileinto";\nfileinto "One";\n');
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['fileinto:One:']);
  const p = join(s.home, 'sieve', 'mine.sieve');
  writeFileSync(p, 'require "fileinto";\nfileinto "Two";\n');
  utimesSync(p, new Date(), new Date(Date.now() + 5000));
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['fileinto:Two:']);
});

test('no active script (dangling or missing ~/.dovecot.sieve): implicit keep', async (t) => {
  const s = await setup(t);
  symlinkSync('sieve/gone.sieve', join(s.home, '.dovecot.sieve'));
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['keep::']);
});

test('vacation: reply composed once per sender and period, not to lists or auto-submitted mail', async (t) => {
  const s = await setup(t);
  s.activate('away', 'require "vacation";\nvacation :days 2 :subject "Away" "Back on Monday.";\n');
  const o1 = await runSieveForDelivery(s.config, s.user, HAM, ENV);
  assert.deepEqual(summary(o1), ['keep::', 'vacation:alice@friends.example:']);
  const reply = o1.actions.find((a) => a.type === 'vacation')!.reply!.toString();
  assert.match(reply, /^To: <alice@friends\.example>\r$/m);
  assert.match(reply, /^Subject: Away\r$/m);
  assert.match(reply, /^In-Reply-To: <h1@friends\.example>\r$/m);
  assert.match(reply, /^Auto-Submitted: auto-replied \(vacation\)\r$/m);
  assert.match(reply, /\r\n\r\nBack on Monday\.\r\n$/);
  assert.ok(existsSync(join(s.home, '.sealmail-sieve-dupes.json')));
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV)), ['keep::']);
  // another sender still gets one; after the period the first one again
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, { ...ENV, from: 'bob@example.net' })), ['keep::', 'vacation:bob@example.net:']);
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, ENV, { now: new Date(Date.now() + 3 * 86400e3) })), ['keep::', 'vacation:alice@friends.example:']);
  const list = Buffer.from('From: l@lists.example\r\nTo: john@example.org\r\nList-Id: <x.lists.example>\r\n\r\nx\r\n');
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, list, { ...ENV, from: 'l@lists.example' })), ['keep::']);
  const auto = Buffer.from('From: c@x.example\r\nTo: john@example.org\r\nAuto-Submitted: auto-replied\r\n\r\nx\r\n');
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, auto, { ...ENV, from: 'c@x.example' })), ['keep::']);
  assert.deepEqual(summary(await runSieveForDelivery(s.config, s.user, HAM, { ...ENV, from: '' })), ['keep::']);
});

test('mailboxexists and :create reach the caller', async (t) => {
  const s = await setup(t);
  s.activate('mb', 'require ["fileinto","mailbox"];\nif mailboxexists "Lists" { fileinto "Lists"; } else { fileinto :create "Lists/New"; }\n');
  const a = await runSieveForDelivery(s.config, s.user, HAM, ENV, { mailboxExists: async (n) => n === 'Lists' });
  assert.deepEqual(summary(a), ['fileinto:Lists:']);
  const b = await runSieveForDelivery(s.config, s.user, HAM, ENV, { mailboxExists: async () => false });
  assert.equal(b.actions[0].create, true);
  assert.equal(b.actions[0].mailbox, 'Lists/New');
});

test('userdb fields override the plugin settings (sieve=, sieve_after=)', async (t) => {
  const s = await setup(t);
  mkdirSync(join(s.dir, 'other'));
  writeFileSync(join(s.dir, 'other', 'x.sieve'), 'require "fileinto";\nfileinto "FromUserdb";\n');
  writeFileSync(join(s.dir, 'after', 'spam.sieve'), SPAM_TO_FOLDER);
  const user = { ...s.user, fields: [['sieve_after', `${s.dir}/other`]] as [string, string][] };
  assert.deepEqual(summary(await runSieveForDelivery(s.config, user, SPAM, ENV)), ['fileinto:FromUserdb:']);
});

test('include at delivery: personal scripts from the user sieve dir, global ones from sieve_global_dir; a missing one keeps the mail', async (t) => {
  const s = await setup(t);
  const global = join(s.dir, 'global');
  mkdirSync(global);
  writeFileSync(join(global, 'spam.sieve'), SPAM_TO_FOLDER);
  const config = await parseConfigText(`plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n  sieve_global_dir = ${global}\n}\n`);
  writeFileSync(join(s.home, 'sieve', 'friends.sieve'), 'require "fileinto";\nif address :domain "from" "friends.example" { fileinto "Friends"; }\n');
  s.activate('main', 'require "include";\ninclude :global "spam";\ninclude :personal "friends";\n');
  assert.deepEqual(summary(await runSieveForDelivery(config, s.user, SPAM, ENV)), ['fileinto:Junk:']);
  assert.deepEqual(summary(await runSieveForDelivery(config, s.user, HAM, ENV)), ['fileinto:Friends:']);
  writeFileSync(join(s.home, 'sieve', 'main.sieve'), 'require ["include","fileinto"];\ninclude "gone";\nfileinto "X";\n');
  const o = await runSieveForDelivery(config, s.user, HAM, ENV);
  assert.deepEqual(summary(o), ['keep::']);
  assert.match(readFileSync(join(s.home, '.dovecot.sieve.log'), 'utf8'), /main: line 2: error: included personal script 'gone' does not exist\./);
});

test('RFC 5463 error at delivery: the script fails, its actions are dropped, the message is kept and the reason logged', async (t) => {
  const s = await setup(t);
  const lines: string[] = [];
  setLogSink((l) => { lines.push(l); });
  t.after(() => setLogSink(null));
  s.activate('main', 'require ["ihave","fileinto"];\nfileinto "A";\nif ihave "x-nope" { xnope "on"; }\nerror "no filing today";\nfileinto "B";\n');
  const o = await runSieveForDelivery(s.config, s.user, HAM, ENV);
  assert.deepEqual(summary(o), ['keep::']);
  assert.deepEqual(o.errors, [`${join(s.home, 'sieve', 'main.sieve')}: no filing today`]);
  assert.ok(lines.some((l) => l.includes('sieve: ') && l.includes('no filing today')), lines.join(''));
  assert.ok(lines.some((l) => l.includes('failed, but implicit keep was successful')), lines.join(''));
});

test('environment at delivery: Pigeonhole LDA/LMTP items (location MDA, phase during, domain from the user, host from `hostname`)', async (t) => {
  // lda-sieve-plugin.c sets SIEVE_ENV_LOCATION_MDA / SIEVE_DELIVERY_PHASE_DURING and mail_set->hostname;
  // the other items are compared with sieve-test in sieve-test-diff.test.ts
  const s = await setup(t, '');
  const config = await parseConfigText(`hostname = mx.example.net\nplugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n`);
  const items = ['location', 'phase', 'domain', 'host', 'name', 'version', 'remote-ip'];
  s.activate('env', 'require ["environment","variables","fileinto"];\n'
    + items.map((it) => `if environment :matches "${it}" "*" { fileinto "${it}=\${1}"; }\n`).join(''));
  assert.deepEqual(summary(await runSieveForDelivery(config, s.user, HAM, ENV)),
    ['fileinto:domain=example.org:', 'fileinto:host=mx.example.net:', 'fileinto:location=MDA:', 'fileinto:name=Pigeonhole Sieve:', 'fileinto:phase=during:', 'fileinto:version=0.5.19:']);
});

test('sieve_extensions = -environment turns environment off at delivery (Pigeonhole\'s compile error, implicit keep)', async (t) => {
  const s = await setup(t, '  sieve_extensions = -environment\n');
  s.activate('env', 'require ["environment","fileinto"];\nif environment :is "location" "MDA" { fileinto "X"; }\n');
  const o = await runSieveForDelivery(s.config, s.user, HAM, ENV);
  assert.deepEqual(summary(o), ['keep::']);
  assert.ok(o.errors.some((e) => e.includes("unknown Sieve capability `environment'")), o.errors.join('\n'));
});
