/**
 * LIST/LSUB patterns against hostile input (RFC 3501 §6.3.8, Dovecot's
 * imap_match): a long folder name and a pattern full of `*` must not stall
 * the server. Before the linear matcher (src/util/wildcard.ts) the pattern
 * became a backtracking RegExp and this LIST ran for hours while every other
 * session on the process waited. The second half checks the matcher's
 * answers against the cases Dovecot's imap_match decides.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { ImapLine } from '../../helpers/imap-line.js';
import { imapPattern, wildcardMatch } from '../../../src/util/wildcard.js';

test('a long-pattern LIST completes and a parallel session is answered meanwhile', async (t) => {
  const srv = await startSealmail(t);
  const a = await ImapLine.open(srv.imapPort);
  const b = await ImapLine.open(srv.imapPort);
  t.after(() => { a.close(); b.close(); });
  await a.cmd('a1', 'LOGIN u pass');
  await b.cmd('b1', 'LOGIN u pass');
  const long = 'a'.repeat(200);
  assert.match(await a.cmd('a2', `CREATE ${long}`), /a2 OK/);
  assert.match(await a.cmd('a3', 'SUBSCRIBE ' + long), /a3 OK/);
  // n choose k steps for a backtracking matcher: 200 choose 16 is astronomical
  const pat = '*a'.repeat(16) + '*b';
  a.sock.write(`a4 LIST "" "${pat}"\r\n`);
  b.sock.write('b2 NOOP\r\n');
  // both answer within the helper's bounded wait (15 s); before the fix neither did
  assert.match(await b.until(/b2 OK[^\r]*\r\n/, 'NOOP during the LIST'), /b2 OK/);
  const list = await a.until(/a4 (OK|NO|BAD)[^\r]*\r\n/, 'the long-pattern LIST');
  assert.match(list, /a4 OK List completed/);
  assert.doesNotMatch(list, /^\* LIST/m);
  // the same with a `%` mix, LSUB, and a matching pattern
  assert.match(await a.cmd('a5', `LSUB "" "${'%a'.repeat(16)}*b"`), /a5 OK/);
  assert.match(await a.cmd('a6', `LIST "" "${'*a'.repeat(16)}*"`), new RegExp(`\\* LIST \\(\\\\HasNoChildren\\) "\\." ${long}\\r\\n`));
  assert.match(await a.cmd('a7', `LIST (SUBSCRIBED) "" ("${pat}" "${'*%'.repeat(40)}a") RETURN (STATUS (MESSAGES))`), /a7 OK/);
  assert.match(await b.cmd('b3', 'NOOP'), /b3 OK/);
});

test('imap_match semantics: %, *, INBOX case, compressed wildcards', () => {
  const m = (p: string, n: string) => imapPattern(p, '.').test(n);
  assert.equal(m('*', 'a.b.c'), true);
  assert.equal(m('%', 'a.b'), false);
  assert.equal(m('%', 'ab'), true);
  assert.equal(m('a.%', 'a.b'), true);
  assert.equal(m('a.%', 'a.b.c'), false);
  assert.equal(m('a%*c', 'a.b.c'), true);
  assert.equal(m('%%%.%', 'x.y'), true);
  assert.equal(m('inbox', 'INBOX'), true);
  assert.equal(m('InBoX.%', 'INBOX.sent'), true);
  assert.equal(m('inbox.%', 'INBOX.Sent.x'), false);
  assert.equal(m('inboxes', 'Inboxes'), false); // not an INBOX pattern: exact case
  assert.equal(m('Inboxes', 'Inboxes'), true);
  assert.equal(m('sent', 'Sent'), false);
  assert.equal(m('I%X', 'INBOX'), true);
  assert.equal(m('i%x', 'INBOX'), true);
  assert.equal(m('*x', 'INBOX'), true);
  assert.equal(m('', ''), true);
  assert.equal(m('', 'a'), false);
  assert.equal(m('a*', 'a'), true);
  assert.equal(m('*.*', 'ab'), false);
  assert.equal(m('a.b', 'a.b'), true);
  assert.equal(m('a?b', 'a?b'), true); // `?` is literal in IMAP patterns
  assert.equal(m('a?b', 'axb'), false);
  assert.equal(wildcardMatch('user@example.com', '*@example.com'), true);
  assert.equal(wildcardMatch('user@example.org', '*@example.com'), false);
  assert.equal(wildcardMatch('Trash', 'T?ash'), true);
  assert.equal(wildcardMatch('Trash', 'T?sh'), false);
  assert.equal(wildcardMatch('', '*'), true);
  assert.equal(wildcardMatch('a.b', 'a.b'), true);
  assert.equal(wildcardMatch('axb', 'a.b'), false);
  assert.equal(wildcardMatch('a'.repeat(5000), '*a'.repeat(2000) + '*b'), false);
});
