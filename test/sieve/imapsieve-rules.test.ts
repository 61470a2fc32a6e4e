/**
 * IMAPSieve mailbox rules as Pigeonhole's imap-sieve-storage.c reads and
 * matches them: imapsieve_mailboxN_* up to the first gap, `from = *` as no
 * source restriction, causes case-insensitive (unknown ones skip the rule),
 * duplicate static rules skipped, LIST wildcards (`*`, `%`, INBOX
 * case-insensitive), the order of the matched rules (wildcard rules first,
 * static ones inserted by index), plus the compile side: the pipe, environment
 * and imapsieve extensions only where the context allows them, the
 * environment test and ${env.*} variables, the CRLF/LF input conversion and
 * running programs (clean environment, exit status, timeout, lookup rules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imapMatch, matchImapSieveRules, parseImapSieveRules } from '../../src/sieve/imapsieve.js';
import { compileScript, SieveCompileError } from '../../src/sieve/compile.js';
import { runScript } from '../../src/sieve/interpreter.js';
import { parseMessage } from '../../src/sieve/message.js';
import { runPipe, withEol } from '../../src/sieve/extprograms.js';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';

const ISPMAIL = {
  imapsieve_mailbox1_name: 'Junk',
  imapsieve_mailbox1_causes: 'COPY',
  imapsieve_mailbox1_before: 'file:/etc/dovecot/sieve/learn-spam.sieve',
  imapsieve_mailbox2_name: '*',
  imapsieve_mailbox2_from: 'Junk',
  imapsieve_mailbox2_causes: 'COPY',
  imapsieve_mailbox2_before: 'file:/etc/dovecot/sieve/learn-ham.sieve',
};
const idx = (r: { index: number }[]) => r.map((x) => x.index);

test('ISPmail rules: into Junk = spam, out of Junk = ham, APPEND and FLAG match nothing', () => {
  const rules = parseImapSieveRules(ISPMAIL);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Junk', 'INBOX', 'COPY')), [1]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'INBOX', 'Junk', 'COPY')), [2]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Trash', 'Junk', 'COPY')), [2]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Archive', 'INBOX', 'COPY')), []);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Junk', null, 'APPEND')), []);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Junk', 'Junk', 'FLAG')), []);
  // Junk to Junk: both, (*, Junk) found first, (Junk, any) inserted before it by index
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Junk', 'Junk', 'COPY')), [1, 2]);
  // names compare exactly, except INBOX
  assert.deepEqual(idx(matchImapSieveRules(rules, 'junk', 'INBOX', 'COPY')), []);
});

test('rule parsing: gaps end the list, from=* is any source, bad causes and duplicates are skipped', () => {
  const warnings: string[] = [];
  const rules = parseImapSieveRules({
    imapsieve_mailbox1_name: ' Spam ', imapsieve_mailbox1_from: '*', imapsieve_mailbox1_causes: 'copy, append',
    imapsieve_mailbox2_name: 'Spam', imapsieve_mailbox2_before: 'file:/x',
    imapsieve_mailbox3_name: 'Other', imapsieve_mailbox3_causes: 'COPY DELETE',
    imapsieve_mailbox4_name: 'INBOX.%', imapsieve_mailbox4_causes: 'FLAG',
    imapsieve_mailbox6_name: 'Never',
  }, (w) => warnings.push(w));
  assert.deepEqual(rules.statics.map((r) => [r.index, r.mailbox, r.from, r.causes]), [[1, 'Spam', null, ['COPY', 'APPEND']]]);
  assert.deepEqual(rules.patterns.map((r) => r.index), [4]);
  assert.deepEqual(warnings, [
    "imapsieve: Duplicate static mailbox rule [2] for mailbox `Spam' (skipped)",
    "imapsieve: Static mailbox rule [3] has invalid event cause `DELETE' (skipped)",
  ]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Spam', null, 'APPEND')), [1]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Spam', 'INBOX', 'FLAG')), []);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'inbox.Lists', 'inbox.Lists', 'FLAG')), [4]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'INBOX.Lists.sub', 'INBOX', 'FLAG')), []);
});

test('wildcard rules: LIST patterns on name and from, order by index with static ones inserted', () => {
  const rules = parseImapSieveRules({
    imapsieve_mailbox1_name: 'Arch*', imapsieve_mailbox1_from: 'INBOX*',
    imapsieve_mailbox2_name: 'Archive',
    imapsieve_mailbox3_name: '*',
    imapsieve_mailbox4_name: 'A%', imapsieve_mailbox4_causes: 'COPY',
  });
  // patterns [1, 4], then (Archive, any) and (*, any) each before the first higher index
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Archive', 'INBOX', 'COPY')), [1, 2, 3, 4]);
  // no higher index after it: (*, any) goes to the front
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Archive.2025', 'INBOX', 'APPEND')), [3, 1]);
  assert.deepEqual(idx(matchImapSieveRules(rules, 'Archive', null, 'APPEND')), [3, 2]);
  assert.equal(imapMatch('INBOX.%', 'inbox.a', '.'), true);
  assert.equal(imapMatch('INBOX.%', 'INBOX.a.b', '.'), false);
  assert.equal(imapMatch('INBOX.*', 'INBOX.a.b', '.'), true);
  assert.equal(imapMatch('Junk', 'Junk.x', '.'), false);
  assert.equal(imapMatch('J?nk', 'Junk', '.'), false);
});

test('compile: pipe/environment/imapsieve only where the context allows them; program names checked', () => {
  const spam = 'require ["vnd.dovecot.pipe", "copy", "imapsieve"];\npipe :copy "rspamd-learn-spam.sh";\n';
  assert.throws(() => compileScript(spam, 'learn-spam'), (e: unknown) => e instanceof SieveCompileError && /unknown Sieve capability `vnd.dovecot.pipe'/.test(e.message));
  const c = compileScript(spam, 'learn-spam', { extensions: ['vnd.dovecot.pipe', 'imapsieve'] });
  assert.ok(c.extensions.has('imapsieve'));
  assert.throws(() => compileScript('require "vnd.dovecot.pipe";\npipe "../bin/sh";\n', 'x', { extensions: ['vnd.dovecot.pipe'] }), /line 2: error: pipe command: invalid program name '..\/bin\/sh'/);
  assert.throws(() => compileScript('require "vnd.dovecot.pipe";\npipe :copy "x";\n', 'x', { extensions: ['vnd.dovecot.pipe'] }), /unknown tagged argument ':copy'/);
  assert.throws(() => compileScript('require ["vnd.dovecot.pipe", "variables"];\nset "p" "x";\npipe "${p}";\n', 'x', { extensions: ['vnd.dovecot.pipe'] }), /requires a constant string/);
});

test('run: environment test, ${env.*}, pipe actions and their effect on keep', async () => {
  const ham = compileScript(`require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables", "vnd.dovecot.environment"];
if environment :matches "imap.mailbox" "*" { set "mailbox" "\${1}"; }
if string "\${mailbox}" "Trash" { stop; }
pipe :copy "rspamd-learn-ham.sh" ["\${env.imap.cause}", "\${env.imap.user}", "\${env.imap.changedflags}"];
if environment "imap.changedflags" "" { pipe :try "never"; }
`, 'learn-ham', { extensions: ['vnd.dovecot.pipe', 'imapsieve', 'environment', 'vnd.dovecot.environment'] });
  const message = parseMessage(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
  const env = { 'imap.mailbox': 'INBOX', 'imap.cause': 'COPY', 'imap.user': 'u@example.org' };
  const r = await runScript(ham, { message, envelope: { from: '', to: '' }, environment: env });
  assert.deepEqual(r.actions, [{ type: 'pipe', program: 'rspamd-learn-ham.sh', args: ['COPY', 'u@example.org', ''], try: false }]);
  assert.equal(r.keep, true);
  const trash = await runScript(ham, { message, envelope: { from: '', to: '' }, environment: { ...env, 'imap.mailbox': 'Trash' } });
  assert.deepEqual(trash.actions, []);
  const noCopy = compileScript('require "vnd.dovecot.pipe";\npipe "p";\n', 'x', { extensions: ['vnd.dovecot.pipe'] });
  assert.equal((await runScript(noCopy, { message, envelope: { from: '', to: '' } })).keep, false);
});

test('pipe input line endings: CRLF by default, LF with sieve_pipe_input_eol = lf', () => {
  const m = Buffer.from('A: 1\nB: 2\r\n\r\nx\ny');
  assert.equal(withEol(m, 'crlf').toString(), 'A: 1\r\nB: 2\r\n\r\nx\r\ny');
  assert.equal(withEol(m, 'lf').toString(), 'A: 1\nB: 2\n\nx\ny');
});

test('runPipe: exit 0 succeeds with the message on stdin; failures, timeouts and unsafe programs are errors', async (t) => {
  const dir = tempDir(t, 'pipe-bin');
  const out = join(dir, 'out');
  writeFileSync(join(dir, 'ok.sh'), `#!/bin/sh\nprintf '%s,' "$@" > "${out}"\necho >> "${out}"\nenv | sort >> "${out}"\ncat >> "${out}"\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'fail.sh'), '#!/bin/sh\necho oops >&2\nexit 3\n', { mode: 0o755 });
  writeFileSync(join(dir, 'slow.sh'), '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
  writeFileSync(join(dir, 'open.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  chmodSync(join(dir, 'open.sh'), 0o777);
  const set = { binDir: dir, timeoutMs: 10_000, eol: 'crlf' as const };
  const input = Buffer.from('A: b\n\nbody\n');
  await runPipe(set, { program: 'ok.sh', args: ['x', 'y z'], input, env: { USER: 'u@example.org', HOME: '/home/u', HOST: 'mx' } });
  const text = readFileSync(out, 'utf8');
  assert.ok(text.startsWith('x,y z,'), text);
  assert.match(text, /^HOME=\/home\/u$/m);
  assert.match(text, /^HOST=mx$/m);
  assert.match(text, /^USER=u@example.org$/m);
  assert.doesNotMatch(text, /^PATH=/m, 'a clean environment, as Dovecot\'s program client');
  assert.ok(text.endsWith('A: b\r\n\r\nbody\r\n'));
  await assert.rejects(runPipe(set, { program: 'fail.sh', args: [], input, env: {} }), /non-zero exit code 3 \(stderr: oops\)/);
  await assert.rejects(runPipe(set, { program: 'missing.sh', args: [], input, env: {} }), /program `missing.sh' not found/);
  await assert.rejects(runPipe(set, { program: 'open.sh', args: [], input, env: {} }), /is world-writable/);
  await assert.rejects(runPipe(set, { program: '../ok.sh', args: [], input, env: {} }), /invalid program name/);
  const t0 = Date.now();
  await assert.rejects(runPipe({ ...set, timeoutMs: 300 }, { program: 'slow.sh', args: [], input, env: {} }), /timed out/);
  assert.ok(Date.now() - t0 < 5000);
});
