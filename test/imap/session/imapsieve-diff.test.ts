/**
 * IMAPSieve differential against the real Dovecot 2.3 + Pigeonhole 0.5
 * (imap_sieve, sieve_extprograms): both servers get ISPmail's configuration
 * (rule 1: into Junk runs learn-spam.sieve; rule 2: from Junk to anywhere
 * runs learn-ham.sieve, which stops for Trash), here with APPEND added to
 * rule 1's causes, a third rule for STORE on INBOX (FLAG) and a fourth whose
 * script keeps with an added flag, discards and files into Trash (the
 * mailboxes' flags and contents afterwards are compared too). The pipe
 * programs record what they were run with (program, argv, stdin bytes, the
 * names of their environment variables, uid, working directory) in a
 * per-server directory; a program that exits 1 or times out must not fail the
 * COPY, and both servers log it with the same lines. The same
 * IMAP session (MOVE/COPY into Junk, APPEND into Junk, MOVE/COPY out of Junk
 * to INBOX and to Trash, a multi-message COPY, flag changes) runs on both
 * and the recordings must be equal. Then again with mail-crypt: the program
 * must get the decrypted message (Pigeonhole reads it through the storage).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { mailIds, setupDovecot } from '../../helpers/dovecot.js';
import { freePort } from '../../helpers/databases.js';
import { ImapLine } from '../../helpers/imap-line.js';
import { tempDir } from '../../helpers/tmp.js';
import { inCI } from '../../helpers/tools.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../../helpers/mail-crypt.js';

const EXTPROGRAMS = '/usr/lib/dovecot/modules/sieve/lib90_sieve_extprograms_plugin.so';

const LEARN_SPAM = 'require ["vnd.dovecot.pipe", "copy", "imapsieve"];\npipe :copy "rspamd-learn-spam.sh";\n';
// ISPmail's learn-ham.sieve, its pipe given arguments so that the environment items are compared too
const LEARN_HAM = `require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables", "vnd.dovecot.environment"];
if environment :matches "imap.mailbox" "*" { set "mailbox" "\${1}"; }
if string "\${mailbox}" "Trash" { stop; }
pipe :copy "rspamd-learn-ham.sh" ["\${mailbox}", "\${env.imap.cause}", "\${env.imap.user}", "\${env.imap.email}"];
`;
const FLAGS = `require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.changedflags" "*" { set "changed" "\${1}"; }
if environment :matches "imap.cause" "*" { set "cause" "\${1}"; }
# RFC 5183's core items as IMAPSieve gives them (host is left out: it is each server's own name)
if environment :matches "location" "*" { set "location" "\${1}"; }
if environment :matches "phase" "*" { set "phase" "\${1}"; }
if environment :matches "domain" "*" { set "domain" "\${1}"; }
if environment :matches "name" "*" { set "name" "\${1}"; }
if environment :matches "version" "*" { set "version" "\${1}"; }
pipe :copy "record-flags.sh" ["\${cause}", "\${changed}", "\${location}", "\${phase}", "\${domain}", "\${name}", "\${version}"];
`;
// actions besides pipe: keep with changed flags, discard, fileinto (compared through the mailboxes' state)
const ARCHIVE = `require ["imap4flags", "fileinto", "imapsieve", "vnd.dovecot.pipe"];
if header :contains "subject" "message 6" { addflag "$archived"; }
elsif header :contains "subject" "message 7" { discard; }
elsif header :contains "subject" "message 8" { fileinto "Trash"; }
elsif header :contains "subject" "message 9" { pipe "broken.sh"; }
else { pipe "slow.sh"; }
`;

/** A recording program: one numbered directory per run (runs are sequential: the server waits for each). */
const RECORDER = (rec: string) => `#!/bin/sh
n=$(ls "${rec}" | wc -l)
d="${rec}/$(printf %03d "$n")"
mkdir "$d"
basename "$0" > "$d/program"
for a in "$@"; do printf '%s\\n' "$a"; done > "$d/args"
env | sed 's/=.*//' | sort > "$d/env"
id -u > "$d/uid"
pwd > "$d/pwd"
cat > "$d/stdin"
`;

function sieveDir(root: string, label: string): { dir: string; rec: string } {
  const dir = join(root, `sieve-${label}`);
  const rec = join(root, `rec-${label}`);
  mkdirSync(dir, { mode: 0o755 });
  mkdirSync(rec, { mode: 0o777 });
  chmodSync(rec, 0o777);
  writeFileSync(join(dir, 'learn-spam.sieve'), LEARN_SPAM);
  writeFileSync(join(dir, 'learn-ham.sieve'), LEARN_HAM);
  writeFileSync(join(dir, 'flags.sieve'), FLAGS);
  writeFileSync(join(dir, 'archive.sieve'), ARCHIVE);
  for (const p of ['rspamd-learn-spam.sh', 'rspamd-learn-ham.sh', 'record-flags.sh']) writeFileSync(join(dir, p), RECORDER(rec), { mode: 0o755 });
  writeFileSync(join(dir, 'broken.sh'), '#!/bin/sh\ncat > /dev/null\nexit 1\n', { mode: 0o755 });
  writeFileSync(join(dir, 'slow.sh'), '#!/bin/sh\ncat > /dev/null\nexec sleep 10\n', { mode: 0o755 });
  // Pigeonhole writes .svbin files next to the scripts as the mail user
  if (process.getuid?.() === 0) chownSync(dir, mailIds().uid, mailIds().gid);
  return { dir, rec };
}

function imapsieveConf(dir: string): string {
  return `protocol imap {
  mail_plugins = $mail_plugins imap_sieve
}
plugin {
  sieve_plugins = sieve_imapsieve sieve_extprograms
  imapsieve_mailbox1_name = Junk
  imapsieve_mailbox1_causes = COPY APPEND
  imapsieve_mailbox1_before = file:${dir}/learn-spam.sieve
  imapsieve_mailbox2_name = *
  imapsieve_mailbox2_from = Junk
  imapsieve_mailbox2_causes = COPY
  imapsieve_mailbox2_before = file:${dir}/learn-ham.sieve
  imapsieve_mailbox3_name = INBOX
  imapsieve_mailbox3_causes = FLAG
  imapsieve_mailbox3_before = file:${dir}/flags.sieve
  imapsieve_mailbox4_name = Archive
  imapsieve_mailbox4_causes = COPY
  imapsieve_mailbox4_before = file:${dir}/archive.sieve
  sieve_pipe_bin_dir = ${dir}
  sieve_pipe_exec_timeout = 1s
  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment
}
`;
}


const msg = (n: number, extra = '') => `From: sender${n}@example.net\r\nTo: u@example.org\r\nSubject: message ${n}\r\nMessage-ID: <m${n}@example.net>\r\n\r\nbody of message ${n}\r\n${extra}`;

/** The session: every step's tagged reply must be OK on both servers. Returns what the last FETCHes showed. */
async function session(port: number, user: string): Promise<string> {
  const c = await ImapLine.open(port);
  try {
    const ok = async (tag: string, cmd: string) => {
      const r = await c.cmd(tag, cmd);
      assert.match(r, new RegExp(`${tag} OK`), `${cmd}: ${r}`);
      return r;
    };
    const append = (tag: string, box: string, text: string) => ok(tag, `APPEND ${box} {${Buffer.byteLength(text)}+}\r\n${text}`);
    await ok('l', `LOGIN ${user} pass`);
    await ok('c1', 'CREATE Junk');
    await ok('c2', 'CREATE Trash');
    await append('a1', 'INBOX', msg(1));
    await append('a2', 'INBOX', msg(2, 'a line ending in LF only\nand one more\r\n'));
    await append('a3', 'INBOX', msg(3));
    await append('a4', 'INBOX', msg(4));
    await ok('s1', 'SELECT INBOX');
    await ok('m1', 'UID MOVE 1 Junk');            // spam (MOVE counts as COPY)
    await ok('m2', 'UID COPY 2 Junk');            // spam
    await append('a5', 'Junk', msg(5));           // spam (APPEND cause)
    await ok('f1', 'UID STORE 3 +FLAGS (\\Flagged $label1)'); // FLAG on INBOX
    await ok('f2', 'UID STORE 3 FLAGS (\\Seen $label2)');
    await ok('f3', 'UID STORE 3 +FLAGS (\\Seen)'); // no change: no event
    await ok('s2', 'SELECT Junk');
    await ok('m3', 'UID MOVE 1 INBOX');           // ham, into INBOX
    await ok('m4', 'UID MOVE 2 Trash');           // learn-ham stops for Trash
    await ok('m5', 'UID COPY 3 INBOX');           // ham (the APPENDed one)
    await ok('s3', 'SELECT INBOX');
    await ok('m6', 'UID COPY 1:* Junk');          // spam, one run per message in UID order
    await ok('c3', 'CREATE Archive');
    for (const n of [6, 7, 8, 9, 10]) await ok(`a${n}`, `APPEND INBOX (\\Seen) {${Buffer.byteLength(msg(n))}+}\r\n${msg(n)}`);
    await ok('s4', 'SELECT INBOX');
    await ok('m7', 'UID COPY 7:11 Archive');       // archive.sieve: addflag, discard, fileinto, a failing pipe, a timeout
    let state = '';
    for (const box of ['Archive', 'Trash']) {
      await ok(`x${box}`, `EXAMINE ${box}`);
      const r = await ok(`y${box}`, 'UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
      state += `${box}:\n${r.split('\r\n').filter((l) => /FETCH|Subject/.test(l)).join('\n')}\n`;
    }
    await ok('o', 'LOGOUT');
    return state;
  } finally { c.close(); }
}

interface Run { program: string; args: string[]; stdin: string; env: string[]; uid: string; pwd: string }

function recorded(rec: string, home: string): Run[] {
  return readdirSync(rec).sort().map((d) => {
    const p = join(rec, d);
    const read = (f: string) => (existsSync(join(p, f)) ? readFileSync(join(p, f)) : Buffer.alloc(0));
    return {
      program: read('program').toString().trim(),
      uid: read('uid').toString().trim(),
      pwd: read('pwd').toString().trim().replace(home, '~'),
      args: read('args').toString().split('\n').slice(0, -1),
      stdin: read('stdin').toString('latin1'),
      // what the shell itself adds is not the server's
      env: read('env').toString().split('\n').filter((v) => v && !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(v)),
    };
  });
}

async function differential(t: import('node:test').TestContext, crypt: boolean): Promise<void> {
  if (!existsSync(EXTPROGRAMS)) {
    const why = `${EXTPROGRAMS} is missing (apt-get install dovecot-sieve)`;
    if (inCI) throw new Error(`CI=true and ${why}`);
    t.skip(why);
    return;
  }
  const root = tempDir(t, 'imapsieve-diff');
  chmodSync(root, 0o755);
  const dov = sieveDir(root, 'dovecot');
  const seal = sieveDir(root, 'sealmail');
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    passdb: crypt ? CRYPT_PASSDB : undefined,
    extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${crypt ? CRYPT_CONF : ''}${imapsieveConf(dov.dir)}`,
  });
  if (!dv) return;
  const srv = await startSealmail(t, { passdb: crypt ? CRYPT_PASSDB : undefined, extraConf: `${crypt ? CRYPT_CONF : ''}${imapsieveConf(seal.dir)}` });
  const user = 'u@example.org';
  const theirState = await session(port, user);
  const ourState = await session(srv.imapPort, user);
  assert.equal(ourState, theirState, 'flags and contents of Archive and Trash after the archive rule');
  assert.match(theirState, /\$archived/, 'the oracle applied the keep flags');
  // Dovecot's three lines about it (the reason in place of "refer to server log")
  for (const re of [
    /Info: program exec:\S+\/broken\.sh \(\d+\): Terminated with non-zero exit code 1/, /Error: sieve: failed to execute to program `broken\.sh': /,
    /Error: program exec:\S+\/slow\.sh \(\d+\): Forcibly terminated with signal 15/, /Error: sieve: failed to pipe message to program `slow\.sh': /,
    /Error: sieve: Execution of script \S+\/archive\.sieve failed/,
  ]) {
    assert.match(dv.log(), re, 'Dovecot');
    assert.match(srv.output(), re, 'Sealmail');
  }
  const theirs = recorded(dov.rec, dv.home(user));
  const ours = recorded(seal.rec, srv.home(user));
  // the oracle did what the scenario expects (so equality below means something)
  assert.deepEqual(theirs.map((r) => r.program), [
    'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh',
    'record-flags.sh', 'record-flags.sh',
    'rspamd-learn-ham.sh', 'rspamd-learn-ham.sh',
    'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh', 'rspamd-learn-spam.sh',
  ], `Dovecot's runs (log: ${dv.log().split('\n').filter((l) => /rror|arning/.test(l)).join('\n')})`);
  assert.deepEqual(ours.map((r) => r.program), theirs.map((r) => r.program), `programs run (Sealmail output: ${srv.output().slice(-2000)})`);
  for (let i = 0; i < theirs.length; i++) {
    assert.deepEqual(ours[i].args, theirs[i].args, `run ${i} (${theirs[i].program}): arguments`);
    assert.equal(ours[i].stdin, theirs[i].stdin, `run ${i} (${theirs[i].program}): stdin`);
    assert.deepEqual(ours[i].env, theirs[i].env, `run ${i} (${theirs[i].program}): environment variable names`);
    assert.equal(ours[i].uid, theirs[i].uid, `run ${i} (${theirs[i].program}): the mail user runs it`);
    assert.equal(ours[i].pwd, theirs[i].pwd, `run ${i} (${theirs[i].program}): working directory`);
  }
  assert.match(theirs[0].stdin, /\r\nbody of message 1\r\n/, 'the message itself, CRLF line endings');
  if (crypt) {
    // both stored Junk encrypted: the programs got plaintext through the storage
    for (const home of [dv.home(user), srv.home(user)]) {
      const cur = join(home, 'Maildir', '.Junk', 'cur');
      const files = [...readdirSync(cur).map((f) => join(cur, f)), ...readdirSync(join(home, 'Maildir', '.Junk', 'new')).map((f) => join(home, 'Maildir', '.Junk', 'new', f))];
      assert.ok(files.length > 0);
      for (const f of files) assert.ok(readFileSync(f).subarray(0, 7).equals(Buffer.from('CRYPTED')), `${f} encrypted`);
    }
  }
}

test('IMAPSieve with pipe: Sealmail runs what Dovecot/Pigeonhole runs (program, args, stdin)', (t) => differential(t, false));

test('IMAPSieve with pipe under mail-crypt: the programs get the decrypted message, as with Dovecot', (t) => differential(t, true));
