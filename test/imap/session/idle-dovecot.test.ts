/**
 * IDLE woken by the real Dovecot (issue #6: "IDLE woken … by another
 * process, or Dovecot"): Sealmail and Dovecot serve one Maildir at the same
 * time, as during a migration; a Sealmail session in IDLE hears Dovecot's
 * APPEND (EXISTS), flag change (FETCH FLAGS) and EXPUNGE, and the UIDs match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { setupDovecot } from '../../helpers/dovecot.js';
import { freePort } from '../../helpers/databases.js';
import { ImapLine } from '../../helpers/imap-line.js';

test('a Sealmail IDLE session sees Dovecot\'s APPEND, STORE and EXPUNGE on the same Maildir', async (t) => {
  const srv = await startSealmail(t);
  const port = await freePort();
  // Dovecot's mail for user "alice" is Sealmail's: the same Maildir
  const dv = setupDovecot(t, {
    start: true,
    mailLocation: `maildir:${srv.home('%u')}/Maildir`,
    extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
  });
  if (!dv) return;
  const idle = await ImapLine.open(srv.imapPort);
  const dov = await ImapLine.open(port);
  t.after(() => { idle.close(); dov.close(); });
  assert.match(await idle.cmd('l', 'LOGIN alice pass'), /l OK/);
  assert.match(await dov.cmd('l', 'LOGIN alice pass'), /l OK/);
  // Sealmail creates the Maildir and its first message; Dovecot then takes part
  const first = 'Subject: one\r\n\r\nfirst\r\n';
  assert.match(await idle.cmd('a', `APPEND INBOX {${first.length}+}\r\n${first}`), /a OK \[APPENDUID (\d+) 1\]/);
  assert.match(await idle.cmd('s', 'SELECT INBOX'), /\* 1 EXISTS/);
  idle.sock.write('i IDLE\r\n');
  await idle.until(/\+ idling\r\n/, 'IDLE continuation');

  const second = 'Subject: two\r\n\r\nsecond, saved by Dovecot\r\n';
  assert.match(await dov.cmd('a', `APPEND INBOX {${second.length}+}\r\n${second}`), /a OK \[APPENDUID \d+ 2\]/, 'Dovecot continues the UID sequence');
  await idle.until(/\* 2 EXISTS\r\n/, 'EXISTS for Dovecot\'s APPEND', 10_000);

  assert.match(await dov.cmd('s', 'SELECT INBOX'), /\* 2 EXISTS/);
  assert.match(await dov.cmd('f', 'UID STORE 1 +FLAGS (\\Flagged)'), /f OK/);
  await idle.until(/\* 1 FETCH \(FLAGS \([^)]*\\Flagged[^)]*\)\)\r\n/, 'FETCH FLAGS for Dovecot\'s STORE', 10_000);

  assert.match(await dov.cmd('d', 'UID STORE 1 +FLAGS.SILENT (\\Deleted)'), /d OK/);
  assert.match(await dov.cmd('x', 'UID EXPUNGE 1'), /\* 1 EXPUNGE\r\nx OK/);
  await idle.until(/\* 1 EXPUNGE\r\n/, 'EXPUNGE for Dovecot\'s expunge', 10_000);
  idle.sock.write('DONE\r\n');
  await idle.until(/i OK /, 'end of IDLE');
  assert.match(await idle.cmd('u', 'UID FETCH 1:* (UID FLAGS)'), /\* 1 FETCH \(UID 2 FLAGS \(\\Recent\)\)|\* 1 FETCH \(UID 2 FLAGS \(\)\)/);
});
