/**
 * SORT / THREAD differential: the corpus in test/fixtures/sort-thread
 * (Re:/Fwd:/[tag]/encoded subjects, missing and broken dates, groups, empty
 * and encoded addresses, duplicate Message-IDs, reference loops, missing
 * parents) appended to both servers with the same INTERNALDATEs, then every
 * sort key, REVERSE, ESORT, SEARCHRES (RETURN (SAVE), `$`), UID variants,
 * search programs, charsets, the
 * three thread algorithms and the error replies — transcripts identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { fixturesDir } from '../../helpers/paths.js';
import { assertSameTranscript, lockstep, normaliseTranscript } from '../../helpers/imap-lockstep.js';

const DIR = join(fixturesDir, 'sort-thread');

function appends(): Buffer[] {
  return readFileSync(join(DIR, 'internaldates.txt'), 'utf8').trim().split('\n').map((l, i) => {
    const [file, ...date] = l.split(' ');
    const msg = readFileSync(join(DIR, file));
    return Buffer.concat([Buffer.from(`A${i} APPEND INBOX "${date.join(' ')}" {${msg.length}+}\r\n`), msg]);
  });
}

const KEYS = ['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO'];
const COMMANDS = [
  ...KEYS.map((k, i) => `s${i} SORT (${k}) UTF-8 ALL`),
  ...KEYS.map((k, i) => `r${i} SORT (REVERSE ${k}) UTF-8 ALL`),
  'm1 SORT (SUBJECT REVERSE DATE) UTF-8 ALL',
  'm2 UID SORT (REVERSE SUBJECT FROM) US-ASCII 1:10',
  'm3 SORT (DATE DATE REVERSE REVERSE SIZE) UTF-8 ALL',
  'm4 SORT (from reverse arrival) utf-8 OR SUBJECT hello FROM l.example',
  'm5 SORT (X-SCORE) UTF-8 ALL',
  'm6 SORT (SUBJECT) UTF-8 SUBJECT nomatch',
  'm7 SORT (DISPLAYFROM) ISO-8859-1 ALL',
  'e1 SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL',
  'e2 UID SORT RETURN () (SUBJECT) UTF-8 1:5',
  'e3 SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT nomatch',
  'e4 SORT RETURN (MIN) (SUBJECT) UTF-8 SUBJECT nomatch',
  'v1 SORT RETURN (SAVE) (DATE) UTF-8 1:5',
  'v2 FETCH $ (UID)',
  'v3 SORT RETURN (SAVE MIN) (DATE) UTF-8 1:5',
  'v4 FETCH $ (UID)',
  'v5 SORT RETURN (SAVE MAX COUNT) (REVERSE DATE) UTF-8 1:5',
  'v6 UID SEARCH UID $',
  'v7 SORT RETURN (SAVE ALL) (DATE) UTF-8 $',
  'v8 THREAD REFS UTF-8 $',
  'v9 SORT RETURN (SAVE) (DATE) UTF-8 SUBJECT nomatch',
  'va SEARCH $',
  'vb UID SORT RETURN (SAVE) (SUBJECT) UTF-8 2:4',
  'vc SORT RETURN (SAVE) (FOO) UTF-8 ALL',
  'vd SEARCH $',
  've SORT RETURN (SAVE) (DATE) FOOBAR ALL',
  'vf SEARCH $',
  'vg SEARCH RETURN (SAVE) 2:4',
  'vh SEARCH RETURN (SAVE) FOO',
  'vi SEARCH $',
  'vj SORT RETURN (SAVE) (DATE) UTF-8 FOO',
  'vk SEARCH $',
  't1 THREAD ORDEREDSUBJECT UTF-8 ALL',
  't2 THREAD REFERENCES UTF-8 ALL',
  't3 THREAD REFS UTF-8 ALL',
  't4 UID THREAD REFS UTF-8 2:*',
  't5 UID THREAD REFERENCES UTF-8 NOT 1',
  't6 THREAD REFERENCES UTF-8 SUBJECT nomatch',
  't7 THREAD ORDEREDSUBJECT UTF-8 10:20',
  't8 THREAD references us-ascii OR FROM l.example SUBJECT other',
  'b1 SORT (FOO) UTF-8 ALL',
  'b2 SORT (DATE) FOOBAR ALL',
  'b3 SORT DATE UTF-8 ALL',
  'b4 SORT () UTF-8 ALL',
  'b5 SORT (REVERSE) UTF-8 ALL',
  'b6 SORT (DATE) UTF-8',
  'b7 SORT ((DATE)) UTF-8 ALL',
  'b8 SORT (DATE) (UTF-8) ALL',
  'b9 SORT (DATE) UTF-8 FOO',
  'ba THREAD FOO UTF-8 ALL',
  'bb THREAD REFS',
  'bc THREAD REFS UTF-8',
  'bd SEARCH CHARSET FOOBAR ALL',
  'be SORT RETURN (FOO) (DATE) UTF-8 ALL',
  'bf UID SORT (FOO) UTF-8 ALL',
  // last: a MODSEQ key enables CONDSTORE for the rest of the session (modseq values of the two servers differ: only MODSEQ 1)
  'x1 SORT (DATE) UTF-8 MODSEQ 1',
  'x2 SORT RETURN (COUNT MIN) (REVERSE DATE) UTF-8 MODSEQ 1',
  'x3 THREAD REFS UTF-8 MODSEQ 1',
  'x4 UID SORT (SUBJECT) UTF-8 MODSEQ 1',
];

test('SORT and THREAD answer as Dovecot does on a hard corpus', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  const srv = await startSealmail(t);
  const script = [...appends(), 'S1 SELECT INBOX', ...COMMANDS];
  const theirs = normaliseTranscript(await lockstep(port, script));
  const ours = normaliseTranscript(await lockstep(srv.imapPort, script));
  assertSameTranscript(ours, theirs);
  // a second round reads the field cache instead of the messages: same answers
  const again = ['S1 SELECT INBOX', ...COMMANDS];
  assertSameTranscript(normaliseTranscript(await lockstep(srv.imapPort, again)), normaliseTranscript(await lockstep(port, again)));
});

test('SORT and THREAD on a mail-crypt mailbox: headers read through the codec, cache sealed', async (t) => {
  const srv = await startSealmail(t, {
    passdb: 'passdb {\n  driver = static\n  args = password=pass userdb_mail_crypt_private_password=%w\n}',
    extraConf: 'mail_attribute_dict = file:%h/Maildir/dovecot-attributes\nmail_plugins = $mail_plugins mail_crypt\nplugin {\n  mail_crypt_curve = prime256v1\n  mail_crypt_save_version = 2\n  mail_crypt_require_encrypted_user_key = yes\n}\n',
  });
  const msgs = ['Subject: Zebra SecretA\r\nMessage-ID: <a@x>\r\n\r\nx\r\n', 'Subject: Re: Apple SecretB\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\n\r\ny\r\n', 'Subject: Mango SecretC\r\n\r\nz\r\n'];
  const script = [...msgs.map((m, i) => `A${i} APPEND INBOX {${m.length}+}\r\n${m}`), 'S1 SELECT INBOX', 'T1 SORT (SUBJECT) UTF-8 ALL', 'T2 THREAD REFERENCES UTF-8 ALL', 'T3 SORT (SUBJECT) UTF-8 ALL'];
  const out = await lockstep(srv.imapPort, script, 'eve@example.org');
  assert.match(out, /\* SORT 2 3 1\r\nT1 OK/);
  assert.match(out, /\* THREAD \(1 2\)\(3\)\r\nT2 OK/);
  assert.match(out, /\* SORT 2 3 1\r\nT3 OK/);
  const maildir = join(srv.home('eve@example.org'), 'Maildir');
  const cache = readFileSync(join(maildir, 'sealmail.cache'));
  assert.ok(cache.length > 40, 'sort headers cached');
  assert.ok(!cache.includes('Secret'), 'no plaintext header in the cache');
});
