/**
 * FETCH of a message whose file another process removed while this session
 * still shows it (the expunge not yet announced, RFC 3501 §7.4.1), against
 * the real Dovecot 2.3: what was seen before (INTERNALDATE, RFC822.SIZE,
 * ENVELOPE, BODYSTRUCTURE; SEARCH by date too) is answered from the last known state, as Dovecot
 * answers from its index cache; what cannot be answered gets Dovecot's
 * placeholders (imap-fetch.c's nil replies: `BODY[TEXT] NIL`, an epoch
 * INTERNALDATE, `RFC822.SIZE 0`, a NIL envelope — never an ungrammatical
 * `INTERNALDATE NIL`) and the tagged `OK [EXPUNGEISSUED]`. The removal is a
 * plain unlink of the Maildir file, which is all another IMAP process's
 * EXPUNGE is to this one: no race needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ImapLine } from '../../helpers/imap-line.js';
import { bothImapServersWithHomes, untimed } from './both-servers.js';

const message = (n: number) => `From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: gone ${n}\r\nMessage-ID: <gone${n}@example.org>\r\nDate: Fri, 5 Mar 2021 10:11:12 +0000\r\n\r\nbody ${n}\r\n`;

/** Removes the Maildir file of the message with this subject, as another process's EXPUNGE does. */
function removeMessageFile(maildir: string, subject: string): void {
  for (const sub of ['cur', 'new']) {
    for (const f of readdirSync(join(maildir, sub))) {
      const p = join(maildir, sub, f);
      // Dovecot stores LF line ends, Sealmail what was appended
      if (readFileSync(p, 'latin1').replaceAll('\r\n', '\n').includes(`Subject: ${subject}\n`)) { unlinkSync(p); return; }
    }
  }
  throw new Error(`no file with Subject: ${subject} in ${maildir}`);
}

async function transcript(port: number, maildir: string): Promise<string[]> {
  const c = await ImapLine.open(port);
  try {
    await c.cmd('l', 'LOGIN bob@example.org pass');
    for (const n of [1, 2]) await c.cmd('a', `APPEND INBOX (\\Seen) "05-Mar-2021 10:11:12 +0100" {${message(n).length}+}\r\n${message(n)}`);
    await c.cmd('s', 'SELECT INBOX');
    const out: string[] = [];
    const meta = 'INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE';
    // message 1 is looked at once (both servers keep these items), then its file goes
    out.push(untimed(await c.cmd('f1', `FETCH 1 (${meta})`)));
    removeMessageFile(maildir, 'gone 1');
    out.push(untimed(await c.cmd('f2', `FETCH 1 (${meta})`)));
    out.push(untimed(await c.cmd('s1', 'SEARCH 1 SINCE 1-Mar-2021')));
    out.push(untimed(await c.cmd('f3', `FETCH 1 (UID FLAGS ${meta} BODY.PEEK[TEXT] BINARY.SIZE[1])`)));
    out.push(untimed(await c.cmd('n', 'NOOP')));
    // message 2 (now 1) was never looked at: nothing of it is known but its flags and UID
    removeMessageFile(maildir, 'gone 2');
    out.push(untimed(await c.cmd('f4', 'FETCH 1 (FLAGS ENVELOPE)')));
    // (Dovecot parsed it when it was saved and has BODY/BODYSTRUCTURE in its cache; Sealmail has not: placeholders, checked below)
    out.push(untimed(await c.cmd('f5', 'FETCH 1 (BODY BODYSTRUCTURE)')));
    out.push(untimed(await c.cmd('f6', 'FETCH 1 (INTERNALDATE RFC822.SIZE RFC822.HEADER BINARY.SIZE[1])')));
    out.push(untimed(await c.cmd('n', 'NOOP')));
    return out;
  } finally { c.close(); }
}

test('FETCH of a message whose file another process removed answers as Dovecot, from the last known state', async (t) => {
  const servers = await bothImapServersWithHomes(t);
  if (!servers) return;
  const theirs = await transcript(servers.dovecot.port, join(servers.dovecot.home('bob@example.org'), 'Maildir'));
  const ours = await transcript(servers.sealmail.port, join(servers.sealmail.home('bob@example.org'), 'Maildir'));
  // Deliberate difference: once Dovecot has noticed the file gone its uidlist no longer has the
  // name whose W= held the size, and it answers its placeholder `RFC822.SIZE 0`; Sealmail keeps
  // answering the size it knows (a message's data never changes, RFC 3501 §2.3)
  const size = (r: string) => r.replace(/RFC822\.SIZE \d+/g, 'RFC822.SIZE n');
  const f5 = 6;
  assert.deepEqual(ours.filter((_, i) => i !== f5).map(size), theirs.filter((_, i) => i !== f5).map(size));
  for (const r of ours) for (const m of r.matchAll(/RFC822\.SIZE (\d+)/g)) assert.equal(m[1], '148', r);
  // what the comparison is about: the date survives, unknown data gets Dovecot's placeholders, never a bare NIL
  assert.match(ours[1], /INTERNALDATE "05-Mar-2021 09:11:12 \+0000" RFC822.SIZE 148 /);
  assert.match(ours[2], /^\* SEARCH 1\r\n/);
  assert.match(ours[3], /BODY\[TEXT\] NIL BINARY.SIZE\[1\] 0\)\r\nf3 OK \[EXPUNGEISSUED\]/);
  assert.equal(ours[f5], '* 1 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit" 0 0) BODYSTRUCTURE ("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL))\r\nf5 OK [EXPUNGEISSUED] Some messages were already expunged.\r\n');
  assert.match(ours[7], /INTERNALDATE "01-Jan-1970 00:00:00 \+0000" /);
  assert.doesNotMatch(ours.join(''), /(INTERNALDATE|RFC822\.SIZE|ENVELOPE|BODY|BODYSTRUCTURE) NIL/);
});
