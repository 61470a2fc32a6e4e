/**
 * SAVEDATE (RFC 8514) and WITHIN (RFC 5032) against the real Dovecot 2.3 on
 * the SAME Maildir, sessions of the two servers taking turns: messages put
 * into the Maildir by hand (neither server saved them, so both fall back to
 * the file's ctime and keep the first value they saw), FETCH SAVEDATE,
 * SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/OLDER/YOUNGER and their errors must
 * read the same; a flag change (a rename, which moves the ctime) a second
 * later moves neither server's save date. Then a message APPENDed to
 * Sealmail keeps its save time across a flag change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mailIds, setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { lockstep } from '../../helpers/imap-lockstep.js';
import { freePort } from '../../helpers/databases.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const day = (d: Date) => `${d.getDate()}-${MONTHS[d.getMonth()]}-${d.getFullYear()}`;

/** The replies that carry data or a command's result (SELECT's counters differ in \Recent bookkeeping). */
function replies(t: string): string[] {
  return t.split('\r\n')
    .filter((l) => /^\* (\d+ FETCH|SEARCH|ESEARCH)/.test(l) || (/^[a-z]\w* (OK|NO|BAD) /.test(l) && !/^s /.test(l)))
    .map((l) => l.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\./, '.'));
}

test('SAVEDATE and OLDER/YOUNGER: Sealmail and Dovecot agree on the same Maildir', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  const srv = await startSealmail(t, { rewriteConf: (text, dir) => text.replace(`${dir}/home/%u`, `${dv.dir}/home/%u`) });
  const user = 'bob@example.org';
  const { uid, gid } = mailIds();
  const md = join(dv.home(user), 'Maildir');
  for (const d of ['', 'cur', 'new', 'tmp']) { mkdirSync(join(md, d), { recursive: true }); chownSync(join(md, d), uid, gid); }
  chownSync(dv.home(user), uid, gid);
  const now = Date.now();
  const dates = [Date.UTC(2020, 0, 1), now - 2 * 3600_000, now - 60_000];
  dates.forEach((ms, i) => {
    const body = `Subject: m${i + 1}\n\nbody ${i + 1}\n`;
    const f = join(md, 'cur', `${1700000000 + i}.M${i}P1.host,S=${body.length}:2,`);
    writeFileSync(f, body);
    chownSync(f, uid, gid);
    utimesSync(f, ms / 1000, ms / 1000);
  });
  const today = day(new Date());
  const tomorrow = day(new Date(now + 86400_000));
  const script = [
    's SELECT INBOX',
    'a1 FETCH 1:* (UID SAVEDATE)',
    'a2 FETCH 2 (ENVELOPE SAVEDATE INTERNALDATE UID)',
    'a3 UID FETCH 3 SAVEDATE',
    `b1 SEARCH SAVEDSINCE ${today}`,
    `b2 SEARCH SAVEDON ${today}`,
    `b3 SEARCH SAVEDBEFORE ${today}`,
    `b4 SEARCH SAVEDBEFORE ${tomorrow}`,
    'b5 SEARCH SAVEDON 1-Jan-2020',
    'b6 SEARCH SAVEDON x',
    'b7 SEARCH SAVEDSINCE',
    'c1 SEARCH OLDER 3600',
    'c2 SEARCH YOUNGER 3600',
    'c3 SEARCH YOUNGER 4294967295',
    'c4 SEARCH NOT OLDER 600',
    'c5 UID SEARCH OR OLDER 100000000 YOUNGER 600',
    'c6 SEARCH OLDER 0',
    'c7 SEARCH YOUNGER x',
    'c8 SEARCH OLDER -5',
    'c9 SEARCH OLDER 4294967296',
    'ca SEARCH YOUNGER',
    'cb SEARCH RETURN (COUNT) YOUNGER 3600',
  ];
  // Dovecot first: its uidlist is the one both use
  const theirs = replies(await lockstep(port, script, user));
  const ours = replies(await lockstep(srv.imapPort, script, user));
  assert.equal(theirs.filter((l) => l.startsWith('* 1 FETCH')).length, 1);
  assert.deepEqual(ours, theirs);

  // a rename a second later moves the ctime, not the save date either server already recorded
  await new Promise((r) => setTimeout(r, 1100));
  await lockstep(port, ['s SELECT INBOX', 'd1 STORE 1 +FLAGS.SILENT (\\Seen)'], user);
  await lockstep(srv.imapPort, ['s SELECT INBOX', 'd2 STORE 2 +FLAGS.SILENT (\\Seen)'], user);
  const again = ['s SELECT INBOX', 'e1 FETCH 1:* (UID SAVEDATE)', `e2 SEARCH SAVEDON ${today}`];
  const theirs2 = replies(await lockstep(port, again, user));
  const ours2 = replies(await lockstep(srv.imapPort, again, user));
  assert.deepEqual(ours2, theirs2);
  assert.deepEqual(theirs2.filter((l) => l.includes('FETCH')), theirs.slice(0, 3), 'the a1 values');
});

test('SAVEDATE of a message APPENDed to Sealmail is its save time and survives a flag change', async (t) => {
  const srv = await startSealmail(t);
  const before = Math.floor(Date.now() / 1000);
  const first = await lockstep(srv.imapPort, ['a1 APPEND INBOX "01-Jan-2020 00:00:00 +0000" {12+}\r\nSubject: x\r\n', 's SELECT INBOX', 'a2 FETCH 1 (SAVEDATE INTERNALDATE)']);
  const m = /SAVEDATE "([^"]+)" INTERNALDATE "01-Jan-2020 00:00:00 \+0000"/.exec(first);
  assert.ok(m, first);
  const saved = Date.parse(m[1].replace(/^(\d+)-(\w+)-(\d+) /, '$2 $1 $3 ')) / 1000;
  assert.ok(saved >= before && saved <= Math.floor(Date.now() / 1000), `${m[1]} is the time of the APPEND`);
  await new Promise((r) => setTimeout(r, 1100));
  const second = await lockstep(srv.imapPort, ['s SELECT INBOX', 'b1 STORE 1 +FLAGS (\\Seen)', 'b2 FETCH 1 SAVEDATE', 'b3 SEARCH YOUNGER 3600', 'b4 SEARCH OLDER 3600']);
  assert.match(second, new RegExp(`\\* 1 FETCH \\(SAVEDATE "${m[1].replace(/\+/g, '\\+')}"\\)`));
  assert.match(second, /\* SEARCH\r\nb3 OK/);
  assert.match(second, /\* SEARCH 1\r\nb4 OK/);
});
