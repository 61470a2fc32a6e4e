/**
 * `sealadm search|expunge|flags|copy|move|mailbox subscribe|unsubscribe|purge`
 * against the real doveadm: two Dovecot instances get the same mail through
 * doveadm; each step runs as doveadm on one and as sealadm on the other's
 * tree, and then stdout (mailbox GUIDs as names), the exit code, the error
 * line and the resulting state — every message's mailbox, UID and flags and
 * the subscriptions, read by doveadm on both sides — must be the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';

const U = 'ann@example.org';
const MESSAGES: [string, string, string?][] = [
  ['INBOX', 'Subject: one\nFrom: a@example.org\n\nfirst\n', '\\Seen'],
  ['INBOX', 'Subject: two\nFrom: b@example.org\n\nsecond\n'],
  ['INBOX', 'Subject: three\nFrom: a@example.org\n\nthird\n', '\\Seen \\Flagged $Work'],
  ['INBOX', 'Subject: four\n\nfourth\n'],
  ['Archive', 'Subject: old\n\narchived\n', '\\Seen'],
  ['Trash', 'Subject: gone\n\ntrash\n', '\\Seen \\Deleted'],
  ['Trash', 'Subject: gone too\n\ntrash\n'],
  ['Dupes', 'Message-ID: <a@x>\nSubject: d1\n\none\n'],
  ['Dupes', 'Message-ID: <a@x>\nSubject: d2\n\nsame id\n'],
  ['Dupes', 'Subject: d3\n\nno id\n'],
  ['Dupes', 'Message-ID: <b@x>\nSubject: d4\n\nother\n'],
  ['Dupes', 'Message-ID: <a@x>\nSubject: d5\n\nsame again\n'],
];

function populate(dv: Dovecot): void {
  for (const box of ['Archive', 'Trash', 'Empty', 'Dupes']) assert.equal(dv.doveadm(['mailbox', 'create', '-u', U, box]).status, 0);
  for (const [box, text, flags] of MESSAGES) {
    const r = dv.doveadm(['save', '-u', U, '-m', box], text);
    assert.equal(r.status, 0, r.stderr);
    if (flags) assert.equal(dv.doveadm(['flags', 'add', '-u', U, flags, 'mailbox', box, 'subject', text.match(/Subject: (.*)/)![1]]).status, 0);
  }
  for (const box of ['INBOX', 'Archive', 'Trash', 'Empty', 'Dupes']) dv.imap(U, `a SELECT ${box}\r\nb LOGOUT\r\n`);
}

/** What a client would see: every message's mailbox, uid and flags, and the subscriptions. */
function state(dv: Dovecot): string {
  const f = dv.doveadm(['-f', 'flow', 'fetch', '-u', U, 'mailbox uid flags', 'all']);
  const s = dv.doveadm(['mailbox', 'list', '-s', '-u', U]);
  // \Recent is a session's view and differs by design (dovecot-compat.md): Dovecot's copy makes it in its own index
  return `${f.stdout.replace(/ \\Recent/g, '')}--\n${s.stdout.split('\n').sort().join('\n')}`;
}

/** GUID → mailbox name, so the two instances' search output compares. */
function guids(dv: Dovecot): Map<string, string> {
  const r = dv.doveadm(['-f', 'tab', 'mailbox', 'status', '-u', U, 'guid', '*']);
  const m = new Map<string, string>();
  for (const line of r.stdout.trim().split('\n').slice(1)) { const [name, guid] = line.split('\t'); m.set(guid, name); }
  return m;
}

test('sealadm search/expunge/flags/copy/move/subscribe/purge = doveadm on the same mail', (t) => {
  const dv = setupDovecot(t, { start: true });
  const sv = setupDovecot(t, { start: true });
  if (!dv || !sv) return;
  t.after(() => { dv.stop(); sv.stop(); });
  populate(dv);
  populate(sv);
  assert.equal(state(sv), state(dv), 'both instances start alike');

  const steps: string[][] = [
    ['search', '-u', U, 'all'],
    ['search', '-u', U, 'mailbox', 'INBOX', 'seen'],
    ['search', '-u', U, 'from', 'a@example.org', 'or', 'deleted'],
    ['search', '-u', U],
    ['search', '-u', U, 'savedsince', '1d', 'mailbox', 'INBOX'],
    ['search', '-u', U, 'savedbefore', '1d'],
    ['flags', 'add', '-u', U, '\\Flagged $Later', 'mailbox', 'INBOX', 'uid', '1:2'],
    ['flags', 'remove', '-u', U, '\\Seen $Work', 'mailbox', 'INBOX', 'all'],
    ['flags', 'replace', '-u', U, '\\Answered', 'mailbox', 'Archive', 'all'],
    ['flags', 'add', '-u', U, '\\Bogus', 'all'],
    ['flags', 'add', '-u', U, '\\Recent', 'mailbox', 'INBOX', 'uid', '4'],
    ['expunge', '-u', U, 'all'],
    ['expunge', '-u', U, 'mailbox', 'INBOX'],
    ['expunge', '-u', U, 'mailbox', 'INBOX', 'or', 'seen'],
    ['expunge', '-u', U, 'mailbox', 'Trash', 'deleted'],
    ['copy', '-u', U, 'Archive', 'mailbox', 'INBOX', 'subject', 'two'],
    ['move', '-u', U, 'Archive', 'mailbox', 'INBOX', 'uid', '4'],
    ['move', '-u', U, 'Archive', 'subject', 'one'],
    ['copy', '-u', U, 'Nope', 'mailbox', 'INBOX', 'all'],
    ['expunge', '-u', U, '-d', 'mailbox', 'Trash', 'all'],
    ['expunge', '-u', U, '-d', 'mailbox', 'Empty', 'all'],
    ['mailbox', 'subscribe', '-u', U, 'Archive', 'INBOX'],
    ['mailbox', 'unsubscribe', '-u', U, 'INBOX'],
    ['mailbox', 'subscribe', '-u', U, 'Nope'],
    ['deduplicate', '-u', U, 'mailbox', 'Dupes', 'all'],
    ['deduplicate', '-u', U, '-m', 'mailbox', 'Dupes', 'not', 'subject', 'd5'],
    ['deduplicate', '-u', U, '-m', 'mailbox', 'Dupes', 'all'],
    ['purge', '-u', U],
  ];
  const dg = guids(dv);
  for (const args of steps) {
    const sg = guids(sv);
    const want: { stdout: string; stderr: string; status: number | null } = dv.doveadm(args);
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', sv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
    const named = (out: string, m: Map<string, string>) => out.replace(/\b[0-9a-f]{32}\b/g, (g) => m.get(g) ?? g);
    const label = args.join(' ');
    assert.equal(named(got.stdout, new Map([...sg, ...guids(sv)])), named(want.stdout, new Map([...dg, ...guids(dv)])), `stdout: ${label}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code: ${label}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    // usage lines name the binary that printed them (sealadm's own name, dovecot-compat.md)
    const last = (e: string) => e.trim().split('\n').at(-1)!.replace(/^usage: sealadm /, 'doveadm ').replace(/^sealadm\(/, 'doveadm(');
    if (want.status !== 0) assert.equal(last(got.stderr), last(want.stderr), `error line: ${label}`);
    assert.equal(state(sv), state(dv), `state after: ${label}`);
  }
});
