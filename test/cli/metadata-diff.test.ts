/**
 * `sealadm mailbox metadata set|unset|get|list` against the real doveadm on
 * twin Dovecot instances with a `file:` mail_attribute_dict: each step runs
 * as doveadm on one tree and as sealadm on the other, and stdout (a list's
 * lines sorted: Dovecot's file dict lists in hash order), the exit code, the
 * last error line and, after each change, the attributes — every key and value as
 * doveadm reads them back from both trees, so Dovecot reads what sealadm
 * wrote — must be the same. Covers mailbox, server (-s '') and internal
 * keys, the configuration's read-only attributes (special_use,
 * mail_server_comment), prefixes (-p, a prefix inside a name), a missing
 * mailbox, an empty name without -s, a key outside /private and /shared,
 * the usage lines, each formatter for get, and no mail_attribute_dict.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';

const U = 'ann@example.org';
const CONF = 'mail_attribute_dict = file:%h/dovecot-attributes\nmail_server_comment = hi there\nnamespace inbox {\n  inbox = yes\n  mailbox Sent {\n    special_use = \\Sent\n  }\n}\n';
const MD = ['mailbox', 'metadata'];

/** Every attribute of INBOX, Work, Sent and the server, as doveadm lists and reads them. */
function state(dv: Dovecot): string {
  const out: string[] = [];
  for (const [box, s] of [['INBOX', []], ['Work', []], ['Sent', []], ['', ['-s']]] as const) {
    const keys = dv.doveadm([...MD, 'list', '-u', U, ...s, '-p', box]).stdout.split('\n').filter(Boolean);
    for (const k of keys) out.push(`${box}\t${k}\t${JSON.stringify(dv.doveadm([...MD, 'get', '-u', U, ...s, box, k]).stdout)}`);
  }
  return out.sort().join('\n');
}

test('sealadm mailbox metadata = doveadm mailbox metadata on the same trees', { timeout: 600_000 }, (t) => {
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: CONF });
  const sv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: CONF });
  if (!dv || !sv) return;
  t.after(() => { dv.stop(); sv.stop(); });
  // without -u both act on $USER: absent here, so both refuse alike
  const userEnv = process.env.USER;
  delete process.env.USER;
  t.after(() => { if (userEnv !== undefined) process.env.USER = userEnv; });
  for (const d of [dv, sv]) for (const box of ['Work', 'Sent']) assert.equal(d.doveadm(['mailbox', 'create', '-u', U, box]).status, 0);

  const steps: string[][] = [
    [...MD, 'set', '-u', U, 'INBOX', '/private/comment', 'hello'],
    [...MD, 'set', '-u', U, 'INBOX', '/Shared/Vendor/x/Y', 'two\nlines'],
    [...MD, 'set', '-u', U, 'Work', '/private/a/b', 'deep'],
    [...MD, 'set', '-u', U, 'Nope', '/private/a', 'v'],
    [...MD, 'set', '-u', U, '', '/private/a', 'v'],
    [...MD, 'set', '-u', U, '-s', '', '/private/srv', 'server'],
    [...MD, 'set', '-u', U, '-s', '', '/shared/comment', 'sc'],
    [...MD, 'set', '-u', U, 'INBOX', 'comment', 'v'],
    [...MD, 'set', '-u', U, 'INBOX', '/private/comment'],
    [...MD, 'set', '-u', U, 'INBOX', '/private/vendor/vendor.dovecot/pvt/x', 'v'],
    [...MD, 'set', '-u', U, 'Sent', '/private/specialuse', 'x'],
    [...MD, 'get', '-u', U, 'INBOX', '/private/comment'],
    ['-f', 'tab', ...MD, 'get', '-u', U, 'INBOX', '/private/comment'],
    ['-f', 'json', ...MD, 'get', '-u', U, 'INBOX', '/shared/vendor/x/y'],
    ['-f', 'pager', ...MD, 'get', '-u', U, 'INBOX', '/private/comment'],
    ['-f', 'table', ...MD, 'get', '-u', U, 'INBOX', '/private/comment'],
    [...MD, 'get', '-u', U, 'INBOX', '/shared/vendor/x/y'],
    [...MD, 'get', '-u', U, 'INBOX', '/private/none'],
    [...MD, 'get', '-u', U, 'Nope', '/private/none'],
    [...MD, 'get', '-u', U, '-s', '', '/private/srv'],
    [...MD, 'get', '-u', U, '', '/private/srv'],
    [...MD, 'get', '-u', U, '-s', '', '/shared/comment'],
    [...MD, 'get', '-u', U, '-s', '', '/shared/admin'],
    [...MD, 'get', '-u', U, 'Sent', '/private/specialuse'],
    [...MD, 'get', '-u', U, 'Work', '/PRIVATE/A/B'],
    [...MD, 'list', '-u', U, 'INBOX'],
    [...MD, 'list', '-u', U, '-p', 'INBOX'],
    [...MD, 'list', '-u', U, '-p', 'INBOX', '/shared'],
    [...MD, 'list', '-u', U, '-p', 'INBOX', '/shared/vendor'],
    [...MD, 'list', '-u', U, '-p', 'INBOX', '/shared/vendor/x/'],
    [...MD, 'list', '-u', U, 'Work'],
    [...MD, 'list', '-u', U, 'Nope'],
    [...MD, 'list', '-u', U, '-s', ''],
    [...MD, 'list', '-u', U, '-s', '-p', '', '/private'],
    [...MD, 'list', '-u', U, 'Sent', '/private/special'],
    [...MD, 'list', '-u', U, 'Sent', '/private/specialuse'],
    ['-f', 'tab', ...MD, 'list', '-u', U, 'INBOX'],
    [...MD, 'unset', '-u', U, 'INBOX', '/private/comment'],
    [...MD, 'unset', '-u', U, 'INBOX', '/private/comment'],
    [...MD, 'unset', '-u', U, 'Nope', '/private/comment'],
    [...MD, 'unset', '-u', U, '-s', '', '/private/srv'],
    [...MD, 'list', '-u', U, 'INBOX'],
    [...MD, 'list', '-u', U],
    [...MD, 'get', '-u', U, 'INBOX'],
    [...MD, 'get', 'INBOX', '/private/x'],
    // no mail_attribute_dict: only what the configuration says
    ['-o', 'mail_attribute_dict=', ...MD, 'set', '-u', U, 'INBOX', '/private/comment', 'v'],
    ['-o', 'mail_attribute_dict=', ...MD, 'get', '-u', U, 'INBOX', '/private/comment'],
    ['-o', 'mail_attribute_dict=', ...MD, 'get', '-u', U, 'Sent', '/private/specialuse'],
    ['-o', 'mail_attribute_dict=', ...MD, 'list', '-u', U, 'INBOX'],
  ];
  for (const args of steps) {
    const want = dv.doveadm(args);
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', sv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    const label = args.join(' ');
    const lines = (out: string) => (args.includes('list') ? out.split('\n').sort().join('\n') : out);
    assert.equal(lines(got.stdout), lines(want.stdout), `stdout: ${label}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code: ${label}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    // usage lines and log prefixes name the binary that printed them (sealadm's own name, dovecot-compat.md)
    const last = (e: string) => e.trim().split('\n').at(-1)!.replace(/^usage: sealadm /, 'doveadm ').replace(/^sealadm\(/, 'doveadm(');
    if (want.status !== 0) assert.equal(last(got.stderr), last(want.stderr), `error line: ${label}`);
    if (args.includes('set') || args.includes('unset')) assert.equal(state(sv), state(dv), `attributes after: ${label}`);
  }
  assert.equal(state(sv), state(dv), 'attributes at the end');
});
