/**
 * Differential NOTIFY (RFC 5465) against the real Dovecot 2.3: session 1
 * sets NOTIFY and NOOPs or IDLEs while session 2 appends, expunges, changes
 * flags, creates, renames, deletes and (un)subscribes in other mailboxes;
 * session 1's STATUS/LIST/FETCH notifications must be Dovecot's. The error
 * cases (BAD positions, BADEVENT, NOTIFICATIONOVERFLOW) are compared too.
 */
import { test } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { assertSameTranscript, bothServers, lockstep, withoutListMarks } from '../../helpers/imap-lockstep.js';
import { multiTranscript } from '../../helpers/imap-multisession.js';
import { foldTiming } from '../../helpers/dovecot-timing.js';

const M1 = 'From: ann@example.org\r\nSubject: one\r\n\r\nfirst\r\n';
function lit(s: string): string { return `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`; }

export const ERRORS = [
  'e1 NOTIFY',
  'e2 NOTIFY FOO',
  'e3 NOTIFY SET',
  'e4 NOTIFY SET (SELECTED)',
  'e5 NOTIFY SET (SELECTED (MessageNew))',
  'e6 NOTIFY SET (SELECTED (FlagChange))',
  'e7 NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange)) (SELECTED-DELAYED NONE)',
  'e8 NOTIFY SET (PERSONAL (AnnotationChange MailboxMetadataChange ServerMetadataChange MessageNew))',
  'e9 NOTIFY SET (PERSONAL ())',
  'f1 NOTIFY SET (PERSONAL (Foo))',
  'f2 NOTIFY SET (FOO (MessageNew))',
  'f3 NOTIFY SET (SUBTREE (MessageNew))',
  'f4 NOTIFY SET (MAILBOXES () (MessageNew))',
  'f5 NOTIFY SET (SELECTED NONE extra)',
  'f6 NOTIFY SET (SELECTED (MessageNew (FOO) MessageExpunge))',
  'f7 NOTIFY SET (SELECTED (MessageNew () MessageExpunge))',
  'f8 NOTIFY SET (SELECTED (SelectedFoo))',
  'f9 NOTIFY NONE',
  'g1 NOTIFY NONE extra',
  'g2 NOTIFY SET STATUS',
  'g3 NOTIFY SET (PERSONAL NONE)',
  'g4 NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge)) (INBOXES (MailboxName))',
  'g5 NOTIFY SET (MAILBOXES "a" (MessageNew))',
  'g6 NOTIFY SET (MAILBOXES ("a" "b") (MessageNew))',
  'g7 NOTIFY SET (SELECTED (MessageNew MessageExpunge) ) (SELECTED (FlagChange))',
  'g8 NOTIFY SET (selected-delayed (messagenew messageexpunge flagchange))',
  'g9 NOTIFY SET (SELECTED (MessageNew MessageExpunge AnnotationChange))',
  `h1 NOTIFY SET (MAILBOXES (${Array.from({ length: 101 }, (_, i) => `m${i}`).join(' ')}) (MessageNew))`,
  `h2 NOTIFY SET (MAILBOXES (${Array.from({ length: 100 }, (_, i) => `m${i}`).join(' ')}) (MessageNew))`,
  `h3 NOTIFY SET (SUBTREE (${Array.from({ length: 101 }, (_, i) => `m${i}`).join(' ')}) (MessageNew))`,
  'h4 NOTIFY SET (SUBTREE Archive (MessageNew)) (SUBTREE Archive.x (MessageNew))',
  'h5 NOTIFY SET (MAILBOXES INBOX NONE)',
  'h6 NOTIFY SET (PERSONAL (MessageNew) extra)',
  'h7 NOTIFY SET PERSONAL',
  'h8 NOTIFY SET STATUS STATUS',
];

export const SCRIPT = [
  'a1 CREATE Other',
  'a2 CREATE Arch',
  `a3 APPEND Other () ${lit(M1)}`,
  'a4 SUBSCRIBE Other',
  // Dovecot's notifier compares with its mailbox list index, which has counters only for mailboxes opened since
  // they last changed: mailboxes never opened yet would all be reported at the first change
  'a4a STATUS INBOX (MESSAGES)',
  'a4b STATUS Arch (MESSAGES)',
  'a5 NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))',
  `2:b1 APPEND Other () ${lit(M1)}`,
  'a6 NOOP',
  `2:b2 APPEND INBOX (\\Seen) ${lit(M1)}`,
  'a7 NOOP',
  '2:b3 SELECT Other',
  '2:b4 STORE 1 +FLAGS (\\Seen)',
  'a8 NOOP',
  '2:b5 STORE 1 +FLAGS (\\Flagged)',
  'a9 NOOP',
  '2:b6 STORE 2 +FLAGS (\\Deleted)',
  '2:b7 EXPUNGE',
  'c1 NOOP',
  '2:b8 CREATE New',
  'c2 NOOP',
  '2:b9 RENAME New Newer',
  // Dovecot's list index learns of a Maildir++ rename at its next refresh (a LIST), and only then notifies
  '2:b9a LIST "" Newer',
  'c3 NOOP',
  '2:d1 SUBSCRIBE Newer',
  'c4 NOOP',
  '2:d2 UNSUBSCRIBE Newer',
  'c5 NOOP',
  '2:d3 DELETE Newer',
  'c6 NOOP',
  'c7 IDLE',
  `2:d4 APPEND Arch () ${lit(M1)}`,
  'DONE c7',
  'c8 SELECT INBOX',
  `2:d5 APPEND INBOX () ${lit(M1)}`,
  'c9 NOOP',
  'd1 NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) (MAILBOXES Other (MessageNew MessageExpunge))',
  `2:d6 APPEND INBOX () ${lit(M1)}`,
  `2:d7 APPEND Other () ${lit(M1)}`,
  'd2 NOOP',
  '2:d8 UNSELECT',
  '2:d9 SELECT INBOX',
  '2:e1 STORE 1 +FLAGS (\\Flagged)',
  'd3 NOOP',
  'd4 NOTIFY NONE',
  `2:e2 APPEND INBOX () ${lit(M1)}`,
  '2:e3 STORE 1 -FLAGS (\\Flagged)',
  'd5 NOOP',
  'd6 FETCH 1:* (FLAGS)',
  'd7 ENABLE CONDSTORE',
  'd8 NOTIFY SET STATUS (SUBTREE Other (MessageNew MessageExpunge FlagChange)) (SUBSCRIBED (MailboxName))',
  '2:e4 SELECT Other',
  '2:e5 STORE 1 +FLAGS (\\Answered)',
  'd9 NOOP',
];

/** SELECTED vs SELECTED-DELAYED expunges, SUBSCRIBED and MAILBOXES filters, FlagChange without CONDSTORE, LIST in IDLE. */
export const SCRIPT2 = [
  'a1 CREATE Sub',
  'a2 CREATE Plain',
  'a3 CREATE Tree',
  'a4 CREATE Tree.Leaf',
  `a5 APPEND Sub () ${lit(M1)}`,
  `a6 APPEND Plain () ${lit(M1)}`,
  `a7 APPEND Tree.Leaf () ${lit(M1)}`,
  `a8 APPEND INBOX () ${lit(M1)}`,
  `a9 APPEND INBOX () ${lit(M1)}`,
  'b1 SUBSCRIBE Sub',
  'b2 STATUS INBOX (MESSAGES)',
  // no CONDSTORE in session 1: a flag change that leaves UNSEEN alone is not reported
  'b3 NOTIFY SET (SUBSCRIBED (MessageNew MessageExpunge FlagChange SubscriptionChange)) (MAILBOXES (Plain Nothing) (MailboxName)) (SUBTREE Tree (MessageNew))',
  '2:c1 SELECT Sub',
  '2:c2 STORE 1 +FLAGS (\\Flagged)',
  'b4 NOOP',
  '2:c3 STORE 1 +FLAGS (\\Seen)',
  'b5 NOOP',
  `2:c4 APPEND Plain () ${lit(M1)}`,
  `2:c5 APPEND Tree.Leaf () ${lit(M1)}`,
  'b6 NOOP',
  '2:c6 SUBSCRIBE Plain',
  'b7 NOOP',
  `2:c7 APPEND Plain () ${lit(M1)}`,
  '2:c8 UNSUBSCRIBE Sub',
  'b8 NOOP',
  `2:c9 APPEND Sub () ${lit(M1)}`,
  'b9 NOOP',
  'd1 IDLE',
  '2:d2 DELETE Plain',
  'DONE d1',
  '2:d3 CREATE Plain',
  '2:d4 CREATE Other',
  'd5 NOOP',
  // the selected mailbox: SELECTED sends expunges after FETCH too, SELECTED-DELAYED only where IMAP allows them
  'e1 SELECT INBOX',
  'e2 NOTIFY SET (SELECTED (MessageNew MessageExpunge FlagChange))',
  '2:e3 SELECT INBOX',
  '2:e4 STORE 1 +FLAGS.SILENT (\\Deleted \\Seen)',
  // (a FETCH of a message expunged meanwhile shows the flags this session last synced, a difference outside NOTIFY)
  'e4a NOOP',
  '2:e5 EXPUNGE',
  'e6 FETCH 1:* (FLAGS)',
  `2:e7 APPEND INBOX () ${lit(M1)}`,
  `2:e8 APPEND INBOX () ${lit(M1)}`,
  'e9 NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge FlagChange))',
  '2:f1 STORE 1 +FLAGS.SILENT (\\Deleted)',
  'f1a NOOP',
  '2:f2 EXPUNGE',
  'f3 FETCH 1:* (FLAGS)',
  'f4 NOOP',
  '2:f5 STORE 1 +FLAGS (\\Answered)',
  'f6 NOTIFY SET (SELECTED (MessageNew MessageExpunge))',
  '2:f7 STORE 1 -FLAGS (\\Answered)',
  `2:f8 APPEND INBOX () ${lit(M1)}`,
  'f9 NOOP',
  'g1 FETCH 1:* (FLAGS)',
  // MessageNew's fetch-att without UID: none is added
  'g2 NOTIFY SET (SELECTED (MessageNew (FLAGS RFC822.SIZE) MessageExpunge))',
  `2:g3 APPEND INBOX (\\Flagged) ${lit(M1)}`,
  'g4 NOOP',
];

function normalise(t: string): string[] {
  return t.split('\r\n')
    .filter((l) => l && !/^\d (\* (OK|PREAUTH) \[CAPABILITY |\* CAPABILITY |L0 )/.test(l))
    .map((l) => foldTiming(withoutListMarks(l.slice(2))).replace(/^/, l.slice(0, 2))
      .replace(/UIDVALIDITY \d+/g, 'UIDVALIDITY X')
      .replace(/\[(COPYUID|APPENDUID) \d+ /, '[$1 X ')
      .replace(/MODSEQ \(\d+\)/g, 'MODSEQ (M)')
      .replace(/MODSEQ \d+/g, 'MODSEQ M'));
}

async function compare(t: import('node:test').TestContext, name: string, script: string[]): Promise<void> {
  const noKeepalive = 'imap_idle_notify_interval = 0\n';
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${noKeepalive}` });
  if (!dv) return;
  const theirs = normalise(await multiTranscript(port, script));
  const only = process.env.NOTIFY_ONLY_DOVECOT;
  let ours: string[] = [];
  if (!only) {
    const srv = await startSealmail(t, { extraConf: noKeepalive });
    ours = normalise(await multiTranscript(srv.imapPort, script));
  }
  if (process.env.NOTIFY_OUT) {
    mkdirSync(process.env.NOTIFY_OUT, { recursive: true });
    writeFileSync(join(process.env.NOTIFY_OUT, `${name}.dovecot`), `${theirs.join('\n')}\n`, 'latin1');
    writeFileSync(join(process.env.NOTIFY_OUT, `${name}.sealmail`), `${ours.join('\n')}\n`, 'latin1');
  }
  if (!only) assertSameTranscript(ours, theirs);
}

test('NOTIFY errors: Sealmail answers as Dovecot does', async (t) => { await compare(t, 'errors', ERRORS); });
test('NOTIFY across sessions: Sealmail notifies as Dovecot does', async (t) => { await compare(t, 'events', SCRIPT); });
test('NOTIFY filters and the selected mailbox: Sealmail notifies as Dovecot does', async (t) => { await compare(t, 'filters', SCRIPT2); });

test('NOTIFY is announced where Dovecot announces it, and not without mailbox_list_index', async (t) => {
  const caps = (transcript: string) => /\* CAPABILITY ([^\r\n]*)/.exec(transcript)![1].split(' ');
  const both = await bothServers(t);
  if (!both) return;
  const theirs = caps(await lockstep(both.dovecot, ['c1 CAPABILITY']));
  const ours = caps(await lockstep(both.sealmail, ['c1 CAPABILITY']));
  assert.ok(theirs.includes('NOTIFY') && ours.includes('NOTIFY'));
  // the order of what both announce is Dovecot's
  assert.deepEqual(ours.filter((c) => theirs.includes(c)), theirs.filter((c) => ours.includes(c)));
  const off = await bothServers(t, 'mailbox_list_index = no\n');
  if (!off) return;
  for (const port of [off.dovecot, off.sealmail]) {
    const tr = await lockstep(port, ['c1 CAPABILITY', 'c2 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))', 'c3 NOTIFY SET (SELECTED (MessageNew MessageExpunge))']);
    assert.ok(!caps(tr).includes('NOTIFY'), `port ${port}`);
    assert.match(tr, /c2 NO \[NOTIFICATIONOVERFLOW\] NOTIFY not supported for these mailboxes[ .]/);
    assert.match(tr, /c3 OK NOTIFY completed/);
  }
});

/** A raw connection that keeps every byte; `cmd` waits for the tagged reply. */
async function rawSession(port: number): Promise<{ buf: () => string; cmd: (line: string) => Promise<void>; close: () => void }> {
  const s = connect(port, '127.0.0.1');
  let buf = '';
  let check = () => undefined as void;
  s.on('data', (d: Buffer) => { buf += d.toString('latin1'); check(); });
  const until = (re: RegExp) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`waited in vain for ${re}: ${buf.slice(-300)}`)), 15_000);
    check = () => { if (re.test(buf)) { clearTimeout(timer); check = () => undefined; resolve(); } };
    check();
  });
  await until(/\r\n/);
  const cmd = async (line: string) => { const tag = line.split(' ')[0]; s.write(`${line}\r\n`); await until(new RegExp(`(^|\r\n)${tag} (OK|NO|BAD) [^\r\n]*\r\n$`)); };
  await cmd('L0 LOGIN bob@example.org pass');
  return { buf: () => buf, cmd, close: () => s.destroy() };
}

test('NOTIFY sends changes between commands, without a NOOP, as Dovecot does', async (t) => {
  const both = await bothServers(t, 'imap_idle_notify_interval = 0\n');
  if (!both) return;
  for (const port of [both.dovecot, both.sealmail]) {
    const one = await rawSession(port);
    const two = await rawSession(port);
    t.after(() => { one.close(); two.close(); });
    await one.cmd('a1 CREATE Other');
    await one.cmd('a2 SELECT INBOX');
    await one.cmd('a3 NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge)) (PERSONAL (MessageNew MessageExpunge))');
    const from = one.buf().length;
    // the selected mailbox is watched from a second after the last command on (Dovecot): a change made
    // before that is seen with the next one, so changes come until both kinds of notification arrived
    const seen = () => { const b = one.buf().slice(from); return /\* STATUS Other \(MESSAGES \d+ UIDNEXT \d+ UNSEEN \d+\)\r\n/.test(b) && /\* \d+ EXISTS\r\n/.test(b) && /\* \d+ FETCH \(UID \d+\)\r\n/.test(b); };
    for (let i = 0; i < 10 && !seen(); i++) {
      await two.cmd(`b${i}a APPEND INBOX {${M1.length}+}\r\n${M1}`);
      await two.cmd(`b${i}b APPEND Other {${M1.length}+}\r\n${M1}`);
      const end = Date.now() + 2000;
      while (!seen() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(seen(), `port ${port} sent: ${one.buf().slice(from)}`);
    assert.doesNotMatch(one.buf().slice(from), /^a\d/m, 'nothing tagged');
  }
});
