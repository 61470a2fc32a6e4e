/**
 * IMAP4rev2 (RFC 9051) beside IMAP4rev1: both announced, rev1 behaviour
 * until ENABLE IMAP4rev2; then no \Recent flag and no RECENT response, no
 * [UNSEEN] at SELECT but a LIST of the mailbox, SEARCH answered with
 * ESEARCH, STATUS DELETED, UTF-8 mailbox names. Dovecot 2.3 has no IMAP4rev2, so this checks the
 * RFC's rules rather than a differential.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { ImapLine } from '../../helpers/imap-line.js';

test('IMAP4rev2 after ENABLE; IMAP4rev1 sessions unchanged beside it', async (t) => {
  const srv = await startSealmail(t);
  const v1 = await ImapLine.open(srv.imapPort);
  const v2 = await ImapLine.open(srv.imapPort);
  t.after(() => { v1.close(); v2.close(); });
  assert.match(await v2.cmd('c', 'CAPABILITY'), /\* CAPABILITY IMAP4rev1 IMAP4rev2 /);
  assert.match(await v1.cmd('l', 'LOGIN alice pass'), /l OK \[CAPABILITY IMAP4rev1 IMAP4rev2 /);
  await v2.cmd('l', 'LOGIN alice pass');

  for (const [i, flags] of [[1, '(\\Deleted)'], [2, '()'], [3, '(\\Seen)']] as const) {
    const msg = `Subject: m${i}\r\nMessage-ID: <m${i}@x>\r\n\r\nbody ${i}\r\n`;
    assert.match(await v1.cmd(`a${i}`, `APPEND INBOX ${flags} {${msg.length}+}\r\n${msg}`), new RegExp(`a${i} OK`));
  }
  assert.match(await v2.cmd('e', 'ENABLE IMAP4rev2'), /^\* ENABLED IMAP4rev2\r\ne OK/);

  const sel = await v2.cmd('s', 'SELECT INBOX');
  assert.match(sel, /\* 3 EXISTS\r\n/);
  assert.doesNotMatch(sel, /RECENT|\[UNSEEN /, 'no RECENT and no [UNSEEN] in IMAP4rev2');
  assert.match(sel, /\* LIST \(\\HasNoChildren\) "\." "?INBOX"?\r\n/);
  assert.match(sel, /\[UIDVALIDITY \d+\]/);
  assert.match(sel, /\[UIDNEXT 4\]/);
  const flags = await v2.cmd('f', 'FETCH 1:* FLAGS');
  assert.doesNotMatch(flags, /\\Recent/, 'no \\Recent flag in IMAP4rev2');
  assert.match(flags, /\* 1 FETCH \(FLAGS \(\\Deleted\)\)\r\n\* 2 FETCH \(FLAGS \(\)\)\r\n\* 3 FETCH \(FLAGS \(\\Seen\)\)/);

  assert.match(await v2.cmd('s1', 'SEARCH ALL'), /^\* ESEARCH \(TAG "s1"\) ALL 1:3\r\ns1 OK/);
  assert.match(await v2.cmd('s2', 'UID SEARCH DELETED'), /^\* ESEARCH \(TAG "s2"\) UID ALL 1\r\ns2 OK/);
  assert.match(await v2.cmd('s3', 'SEARCH SUBJECT nothing-like-this'), /^\* ESEARCH \(TAG "s3"\)\r\ns3 OK/);
  assert.match(await v2.cmd('s4', 'SEARCH RETURN (COUNT) UNSEEN'), /^\* ESEARCH \(TAG "s4"\) COUNT 2\r\ns4 OK/);
  assert.match(await v2.cmd('st', 'STATUS INBOX (MESSAGES DELETED UNSEEN)'), /\* STATUS INBOX \(MESSAGES 3 UNSEEN 2 DELETED 1\)/);

  // RFC 9051 §5.1: mailbox names are UTF-8 in IMAP4rev2; the store keeps Dovecot's mUTF-7, a rev1 client sees that
  const utf8 = Buffer.from('Entwürfe', 'utf8').toString('latin1'); // the client reads bytes as latin1
  assert.match(await v2.cmd('cr', 'CREATE "Entwürfe"'), /cr OK/);
  const names = (r: string) => [...r.matchAll(/\* LIST \([^)]*\) "\." (?:\{\d+\}\r\n)?"?([^"\r]*)"?\r\n/g)].map((m) => m[1]);
  assert.deepEqual(names(await v2.cmd('li', 'LIST "" "Entw*"')), [utf8]);
  assert.deepEqual(names(await v1.cmd('li', 'LIST "" "Entw*"')), ['Entw&APw-rfe']);
  assert.match(await v2.cmd('st2', 'STATUS "Entwürfe" (MESSAGES)'), new RegExp(`\\* STATUS \\{9\\}\\r\\n${utf8} \\(MESSAGES 0\\)`));

  // the rev1 session beside it keeps rev1 answers
  assert.match(await v1.cmd('b1', 'STATUS INBOX (DELETED)'), /b1 BAD/);
  const sel1 = await v1.cmd('b2', 'SELECT INBOX');
  assert.match(sel1, /\* 0 RECENT\r\n/);
  assert.match(sel1, /\[UNSEEN 1\]/);
  assert.match(await v1.cmd('b3', 'SEARCH ALL'), /^\* SEARCH 1 2 3\r\n/);

  // a new message: the rev2 session hears EXISTS, never RECENT
  const msg = 'Subject: m4\r\n\r\nbody 4\r\n';
  const other = await ImapLine.open(srv.imapPort);
  t.after(() => other.close());
  await other.cmd('l', 'LOGIN alice pass');
  await other.cmd('a', `APPEND INBOX {${msg.length}+}\r\n${msg}`);
  const noop = await v2.cmd('n', 'NOOP');
  assert.match(noop, /\* 4 EXISTS\r\n/);
  assert.doesNotMatch(noop, /RECENT/);
  // (\Recent goes to whichever session syncs first, here the rev2 one, which does not show it)
  assert.match(await v1.cmd('n', 'NOOP'), /\* 4 EXISTS\r\n/);
});
