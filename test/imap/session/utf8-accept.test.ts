/**
 * UTF8=ACCEPT (RFC 6855), which Dovecot 2.3 lacks, so checked against the
 * RFC: after ENABLE UTF8=ACCEPT mailbox names go both ways as UTF-8 (LIST,
 * LSUB, STATUS, CREATE, SELECT, APPEND, COPY, RENAME, METADATA) while the
 * Maildir keeps Dovecot's mUTF-7 folder names; a session without ENABLE
 * still sees mUTF-7; UTF-8 quoted strings in SEARCH need no CHARSET.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { lockstep } from '../../helpers/imap-lockstep.js';

const u = (s: string) => Buffer.from(s, 'utf8');
/** An 8-bit name as the encoder sends it: a literal (RFC 6855 allows quoted strings too). */
const n = (s: string) => `\\{${Buffer.byteLength(s)}\\}\r\n${s.replace(/\./g, '\\.')}`;
const MSG = 'Subject: =?utf-8?q?caf=C3=A9?= menu\r\n\r\ncrème brûlée\r\n';

test('UTF8=ACCEPT: UTF-8 mailbox names on the wire, mUTF-7 on disk, plain sessions unchanged', async (t) => {
  const srv = await startSealmail(t, { extraConf: 'imap_metadata = yes\nmail_attribute_dict = file:%h/dovecot-attributes\n' });
  const user = 'bob@example.org';
  const out = Buffer.from(await lockstep(srv.imapPort, [
    'a1 CAPABILITY',
    'a2 ENABLE UTF8=ACCEPT',
    u('a3 CREATE "Café"'),
    u('a4 CREATE "Café.Größe"'),
    u('a5 LIST "" "Caf*"'),
    u(`a6 APPEND "Café" {${Buffer.byteLength(MSG)}+}\r\n${MSG}`),
    u('a7 STATUS "Café" (MESSAGES)'),
    u('a8 SELECT "Café"'),
    u('a9 SEARCH BODY "brûlée"'),
    u('b1 SEARCH SUBJECT "café"'),
    u('b2 COPY 1 "Café.Größe"'),
    u('b3 SETMETADATA "Café" (/private/comment "ça va")'),
    u('b4 GETMETADATA "Café" /private/comment'),
    u('b5 RENAME "Café.Größe" "Tee"'),
    'b6 LIST "" "*"',
    'b7 ENABLE UTF8=ACCEPT',
    u('b8 SELECT "Größe"'),
  ], user), 'latin1').toString('utf8');
  assert.match(out, /^b8 NO Mailbox doesn't exist: Größe/m, 'errors name the mailbox as the client wrote it');
  assert.match(out, /^\* CAPABILITY [^\r]* UTF8=ACCEPT/m);
  assert.match(out, /^\* ENABLED UTF8=ACCEPT\r\na2 OK/m);
  assert.match(out, /^a3 OK/m);
  assert.match(out, new RegExp(`^\\* LIST \\(\\\\HasChildren\\) "\\." ${n('Café')}\r\n\\* LIST \\(\\\\HasNoChildren\\) "\\." ${n('Café.Größe')}\r\na5 OK`, 'm'));
  assert.match(out, /^a6 OK \[APPENDUID \d+ 1\]/m);
  assert.match(out, new RegExp(`^\\* STATUS ${n('Café')} \\(MESSAGES 1\\)`, 'm'));
  assert.match(out, /^\* SEARCH 1\r\na9 OK/m);
  assert.match(out, /^\* SEARCH 1\r\nb1 OK/m);
  assert.match(out, /^b2 OK \[COPYUID \d+ 1 1\]/m);
  assert.match(out, new RegExp(`^\\* METADATA ${n('Café')} \\(/private/comment \\{6\\}\r\nça va\\)\r\nb4 OK`, 'm'));
  assert.match(out, /^b5 OK/m);
  assert.match(out, /^\* LIST \([^)]*\) "\." Tee\r\n/m);
  // nothing new enabled: Dovecot sends no ENABLED line at all
  assert.match(out, /^b7 OK/m);
  assert.doesNotMatch(out, /^\* ENABLED[^\r]*\r\nb7 OK/m, 'a second ENABLE reports nothing new');
  // the Maildir holds Dovecot's mUTF-7 folder names
  const md = join(srv.home(user), 'Maildir');
  assert.ok(existsSync(join(md, '.Caf&AOk-', 'cur')));
  assert.ok(existsSync(join(md, '.Tee', 'cur')));

  // without ENABLE the same folders are mUTF-7 on the wire
  const plain = await lockstep(srv.imapPort, ['c1 LIST "" "Caf*"', 'c2 STATUS "Caf&AOk-" (MESSAGES)', 'c3 GETMETADATA "Caf&AOk-" /private/comment'], user);
  assert.match(plain, /^\* LIST \(\\HasNoChildren\) "\." Caf&AOk-\r\nc1 OK/m);
  assert.match(plain, /^\* STATUS Caf&AOk- \(MESSAGES 1\)/m);
  assert.match(plain, /^\* METADATA Caf&AOk- /m);
});

test('APPEND with the UTF8 data item: refused before ENABLE, stored with its flags and date after (also in MULTIAPPEND)', async (t) => {
  const srv = await startSealmail(t);
  const msg = 'Subject: Grüße\r\n\r\nÄpfel\r\n';
  const len = Buffer.byteLength(msg);
  const out = Buffer.from(await lockstep(srv.imapPort, [
    u(`a1 APPEND INBOX UTF8 (~{${len}+}\r\n${msg})`),
    'a2 ENABLE UTF8=ACCEPT',
    u(`a3 APPEND INBOX (\\Seen) "01-Jan-2020 00:00:00 +0000" UTF8 (~{${len}+}\r\n${msg}) (\\Flagged) UTF8 (~{${len}+}\r\n${msg})`),
    u(`a4 APPEND INBOX UTF8 (~{${len}+}\r\n${msg})`),
    's SELECT INBOX',
    'f FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])',
  ], 'bob'), 'latin1').toString('utf8');
  assert.match(out, /^a1 BAD Error in IMAP command APPEND: UTF8 data item without ENABLE UTF8=ACCEPT/m);
  assert.match(out, /^a3 OK \[APPENDUID \d+ 1:2\]/m);
  assert.match(out, /^a4 OK \[APPENDUID \d+ 3\]/m);
  assert.match(out, /^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) INTERNALDATE "01-Jan-2020 00:00:00 \+0000" BODY\[\] \{\d+\}\r\nSubject: Grüße/m);
  assert.match(out, /^\* 2 FETCH \(FLAGS \(\\Flagged \\Recent\) /m);
  assert.match(out, /^\* 3 FETCH \(FLAGS \(\\Recent\) /m);
  assert.doesNotMatch(out, /unknown-/);
});
