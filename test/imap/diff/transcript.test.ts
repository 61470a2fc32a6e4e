/**
 * Differential IMAP: the same scripted session against the real Dovecot 2.3
 * and against Sealmail, both over TCP after LOGIN, one command at a time
 * (Dovecot runs pipelined commands in parallel), each on its own empty
 * Maildir; the transcripts must be
 * identical after normalising only what must differ: timing suffixes,
 * UIDVALIDITY values, the capability lists (Sealmail announces only what it
 * implements) and the greeting/login lines.
 */
import { test } from 'node:test';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { assertSameTranscript, lockstep, normaliseTranscript } from '../../helpers/imap-lockstep.js';

const M1 = 'From: Ann Example <ann@example.org>\r\nTo: bob@example.org, "Carl, C." <carl@example.net>\r\nCc: team: x@example.org, y@example.org;\r\nSubject: =?utf-8?q?caf=C3=A9?= plans\r\nDate: Tue, 3 Feb 2026 10:11:12 +0100\r\nMessage-ID: <m1@example.org>\r\n\r\nHello Bob,\r\nlunch?\r\n';
const M2 = 'From: bob@example.org\r\nTo: ann@example.org\r\nSubject: Re: plans\r\nIn-Reply-To: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XYZ"\r\n\r\npreamble\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nsure, at noon \xc3\xa9\r\n--XYZ\r\nContent-Type: application/octet-stream; name="a.bin"\r\nContent-Disposition: attachment; filename="a.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XYZ--\r\n';
const M3 = 'Subject: no body\r\n\r\n';

function lit(s: string): string { return `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`; }

const SCRIPT = [
  `a1 APPEND INBOX (\\Seen) "03-Feb-2026 10:11:12 +0100" ${lit(M1)}`,
  `a2 APPEND INBOX () "04-Feb-2026 08:00:00 +0000" ${lit(M2)}`,
  `a3 APPEND INBOX (\\Flagged $Work) "05-Feb-2026 09:30:00 -0500" ${lit(M3)}`,
  'a4 CREATE Archive',
  'a5 CREATE Archive.2026',
  'a6 LIST "" "*"',
  'a7 LIST "" "%"',
  'a8 STATUS INBOX (MESSAGES UNSEEN UIDNEXT SIZE)',
  'a9 SELECT INBOX',
  'b1 FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)',
  'b2 FETCH 1:3 ENVELOPE',
  'b3 FETCH 1:3 BODYSTRUCTURE',
  'b4 FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[TEXT]<0.20>)',
  'b5 FETCH 3 BODY.PEEK[]',
  'b6 UID FETCH 2:* (FLAGS)',
  'c1 SEARCH SEEN',
  'c2 SEARCH UNSEEN',
  'c3 UID SEARCH FROM ann',
  'c4 SEARCH OR FLAGGED SEEN',
  'c5 SEARCH KEYWORD $Work',
  'c6 SEARCH SUBJECT plans NOT SEEN',
  'c7 SEARCH RETURN (MIN MAX COUNT ALL) ALL',
  'c8 UID SEARCH RETURN () 2:3',
  'c9 SEARCH RETURN (COUNT) SUBJECT nomatch',
  'ca SEARCH RETURN (MIN) SUBJECT nomatch',
  'cb SEARCH RETURN (FOO) ALL',
  'd1 STORE 2 +FLAGS (\\Answered)',
  'd2 STORE 2 -FLAGS.SILENT (\\Answered)',
  'd3 UID STORE 3 FLAGS (\\Deleted)',
  'd4 FETCH 2 FLAGS',
  'e1 COPY 1 Archive',
  'e2 UID MOVE 2 Archive.2026',
  'e3 EXPUNGE',
  'e4 STATUS Archive (MESSAGES UIDNEXT)',
  'e5 FETCH 1:* (UID FLAGS)',
  'f1 EXAMINE Archive',
  'f2 FETCH 1 (FLAGS BODY[HEADER.FIELDS (MESSAGE-ID)])',
  'f3 STORE 1 +FLAGS (\\Seen)',
  'f4 UNSELECT',
  'g1 RENAME Archive.2026 Archive.Old',
  'g2 DELETE Archive.Old',
  'g3 SUBSCRIBE Archive',
  'g4 LSUB "" "*"',
  'g5 SELECT Nope',
  'g6 FETCH 1 FLAGS',
  'g7 NOOP',
];

test('scripted session: Sealmail answers as Dovecot does', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  const srv = await startSealmail(t);
  const theirs = normaliseTranscript(await lockstep(port, SCRIPT));
  const ours = normaliseTranscript(await lockstep(srv.imapPort, SCRIPT));
  assertSameTranscript(ours, theirs);
});
