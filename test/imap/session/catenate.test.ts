/**
 * CATENATE (RFC 4469) beyond the differential scripts (50-/51-catenate):
 * a mail-crypt user's URL parts are read decrypted and the composed message
 * is saved encrypted through the normal save path; the argument errors
 * Dovecot 2.3.19 cannot be compared on (`URL` without its URL crashes its
 * imap process, `TEXT "string"` leaves the rest of its line to be read as a
 * new command) get one clean BAD here; a composed message over APPENDLIMIT
 * is refused with TOOBIG; the URL parser reports where it stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { ImapLine } from '../../helpers/imap-line.js';
import { CRYPT_CONF, CRYPT_PASSDB } from '../../helpers/mail-crypt.js';
import { parseRelativeImapUrl } from '../../../src/imap/imap-url.js';
import { CatenateMessage, validSection } from '../../../src/imap/commands/catenate.js';
import type { Session } from '../../../src/imap/session.js';

const ORIGINAL = 'From: a@example.org\r\nSubject: SecretMarkerSubject\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSecretMarkerBody\r\n--b--\r\n';

const messageFiles = (maildir: string) => ['new', 'cur'].flatMap((d) => readdirSync(join(maildir, d)).map((f) => join(maildir, d, f)));

test('CATENATE for a mail-crypt user: URL parts read decrypted, the composed message stored encrypted', async (t) => {
  const srv = await startSealmail(t, { passdb: CRYPT_PASSDB, extraConf: CRYPT_CONF });
  const c = await ImapLine.open(srv.imapPort);
  t.after(() => c.close());
  await c.cmd('l', 'LOGIN eve@example.org pass');
  assert.match(await c.cmd('c', 'CAPABILITY'), /\bURL-PARTIAL CATENATE\b/);
  await c.cmd('a', `APPEND INBOX {${ORIGINAL.length}+}\r\n${ORIGINAL}`);
  const sel = await c.cmd('s', 'SELECT INBOX');
  const uidValidity = /UIDVALIDITY (\d+)/.exec(sel)![1];
  const head = 'Subject: composed\r\n\r\n';
  const r = await c.cmd('b', `APPEND INBOX (\\Seen) CATENATE (TEXT {${head.length}+}\r\n${head} URL "/INBOX;UIDVALIDITY=${uidValidity}/;UID=1/;SECTION=1" URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(FROM)/;PARTIAL=6.13")`);
  assert.match(r, new RegExp(`b OK \\[APPENDUID ${uidValidity} 2\\] Append completed`));
  const f = await c.cmd('f', 'UID FETCH 2 (FLAGS BODY.PEEK[])');
  const expected = `${head}SecretMarkerBodya@example.org`;
  assert.ok(f.includes(`BODY[] {${expected.length}}\r\n${expected})`), f);
  assert.match(f, /FLAGS \(\\Seen/);
  const files = messageFiles(join(srv.home('eve@example.org'), 'Maildir'));
  assert.equal(files.length, 2);
  for (const file of files) {
    const stored = readFileSync(file);
    assert.ok(stored.subarray(0, 7).equals(Buffer.from('CRYPTED')), `${file} stored encrypted`);
    assert.ok(!stored.includes('SecretMarker') && !stored.includes('composed'));
  }
});

test('CATENATE argument errors Dovecot cannot be compared on: one BAD each, nothing saved, the session goes on', async (t) => {
  const srv = await startSealmail(t);
  const c = await ImapLine.open(srv.imapPort);
  t.after(() => c.close());
  await c.cmd('l', 'LOGIN bob@example.org pass');
  const plain = 'Subject: x\r\n\r\nbody text\r\n';
  await c.cmd('a', `APPEND INBOX {${plain.length}+}\r\n${plain}`);
  await c.cmd('s', 'SELECT INBOX');
  for (const args of ['(URL)', '(TEXT "abc")', '(URL "/INBOX/;UID=1" BAR)', '(URL NIL)', '(URL ("x"))', '(TEXT {3+}\r\nabc URL)', '(FOO TEXT {3+}\r\nabc)', '(URL "/INBOX/;UID=1") (TEXT {3+}\r\nabc)']) {
    const r = await c.cmd('x', `APPEND INBOX CATENATE ${args}`);
    assert.match(r, /^x BAD Error in IMAP command APPEND: Invalid arguments/m, args);
    assert.doesNotMatch(r, /\* BAD/, args);
  }
  // a line that fails to parse after a TEXT part: its BAD, and the next APPEND is not held up by it
  assert.match(await c.cmd('p', 'APPEND INBOX CATENATE (TEXT {3+}\r\nabc URL "x'), /^p BAD Error in IMAP command APPEND: Missing '"'/m);
  // a URL may come as a literal (astring)
  const url = '/INBOX/;UID=1/;SECTION=TEXT';
  assert.match(await c.cmd('u', `APPEND INBOX CATENATE (URL {${url.length}+}\r\n${url})`), /u OK \[APPENDUID \d+ 2\]/);
  assert.match(await c.cmd('n', 'STATUS INBOX (MESSAGES)'), /MESSAGES 2\)/);
  assert.match(await c.cmd('g', 'UID FETCH 2 BODY.PEEK[]'), /BODY\[\] \{11\}\r\nbody text\r\n\)/);
});

test('composed messages over APPENDLIMIT (one command\'s together) are refused with TOOBIG', async () => {
  const fake = { log: { error: () => undefined } } as unknown as Session;
  const budget = { left: 14 };
  const earlier = new CatenateMessage(fake, [], false, budget);
  earlier.addText(4, false);
  const msg = new CatenateMessage(fake, [], false, budget);
  const first = msg.addText(6, false);
  first.push(Buffer.from('123456'));
  first.end();
  msg.addText(5, false);
  msg.close();
  await assert.rejects(msg.composed(), (e: Error & { code?: { name: string } }) => e.code?.name === 'TOOBIG' && /maximum size/.test(e.message));
});

test('IMAP URL parser: Dovecot texts, and the offset where it stopped', () => {
  const base = { mailbox: 'INBOX', uidValidity: 7 };
  const err = (u: string) => { const r = parseRelativeImapUrl(u, base); assert.ok(!r.ok, u); return [r.error, r.offset]; };
  assert.deepEqual(err('/INBOX/;UID=1/;PARTIAL=1.'), ['Empty PARTIAL size', 25]);
  assert.deepEqual(err('/INBOX/;UID=0'), ['UID cannot be zero', 12]);
  assert.deepEqual(err('/IN;BOX/;UID=1'), ["Encountered stray ';' in mailbox reference", 3]);
  assert.deepEqual(err('/INBOX/;UID=1%4'), ["Unexpected URI boundary after '%'", 13]);
  assert.deepEqual(err('/INBOX/;UID=1 x'), ['Path component contains invalid character', 13]);
  assert.deepEqual(err(`/INBOX/;UID=1/${'x'.repeat(100)}`), [`Unexpected IMAP URL path segment: \`${'x'.repeat(77)}...'`, 14]);
  const ok = parseRelativeImapUrl('./;UID=3/;SECTION=1.2/;PARTIAL=5.10', base);
  assert.deepEqual(ok, { ok: true, url: { mailbox: 'INBOX', uidValidity: 7, uid: 3, section: '1.2', havePartial: true, partialOffset: 5, partialSize: 10, searchProgram: null } });
  // a long hostile URL is one linear pass
  assert.equal(err(`/${';'.repeat(200_000)}`)[0], `Unexpected IMAP URL path segment: \`${';'.repeat(77)}...'`);
  for (const [s, v] of [['', true], ['1.2', true], ['1.', false], ['1.2.MIME', true], ['MIME', false], ['header.fields (a "b")', true], ['HEADER.FIELDS ()', false], ['HEADER.FIELDS (A) x', false], ['2HEADER', false]] as const) {
    assert.equal(validSection(s), v, s);
  }
});
