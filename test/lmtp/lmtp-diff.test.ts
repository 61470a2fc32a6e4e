/**
 * Differential LMTP transcripts (issue #7 item 1): the same scripts against
 * the real Dovecot 2.3 lmtp and Sealmail, each on a unix socket and TCP,
 * compared line by line after normalising only session ids. The messages
 * they store (headers Dovecot adds, dot-unstuffing, BDAT chunks) are compared
 * too, and a DATA or BDAT stream cut mid-way must store nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot, mailIds } from '../helpers/dovecot.js';
import { startSealmail } from '../helpers/sealmail-server.js';
import { freePort } from '../helpers/databases.js';
import { tempDir } from '../helpers/tmp.js';
import { transcript, type Step, type Target } from '../helpers/line-transcript.js';

const GREETING = 'Sealmail test ready.';

const LHLO: Step = { send: 'LHLO client.example\r\n' };
const MAIL: Step = { send: 'MAIL FROM:<sender@example.net>\r\n' };
const rcpt = (a: string): Step => ({ send: `RCPT TO:<${a}>\r\n` });
const QUIT: Step = { send: 'QUIT\r\n' };

/** name → steps; the message bodies carry a marker so the stored copies can be found. */
const SCRIPTS: Record<string, Step[]> = {
  'lhlo, noop, vrfy, quit': [LHLO, { send: 'NOOP\r\n' }, { send: 'VRFY john@example.org\r\n' }, { send: 'VRFY\r\n' }, { send: 'noop with args\r\n' }, QUIT],
  'delivery: good, unknown, detail, duplicate recipients; dot-stuffing; per-recipient replies': [
    LHLO, { send: 'MAIL FROM:<sender@example.net> BODY=8BITMIME\r\n' },
    rcpt('john@example.org'), rcpt('nobody@example.org'), rcpt('john+news@example.org'), rcpt('john@example.org'), rcpt('jane@example.org'),
    { send: 'DATA\r\n' },
    { send: 'Subject: marker-dots\r\nMessage-ID: <dots@example.net>\r\n\r\n..leading dot\r\n...two\r\n.\r\n', replies: 4 },
    MAIL, rcpt('jane@example.org'), { send: 'DATA\r\n' },
    { send: 'Subject: marker-second\r\n\r\nsecond transaction\r\n.\r\n' }, QUIT,
  ],
  'MAIL parameters': [
    LHLO, { send: 'MAIL FROM:<a@example.net> SIZE=100\r\n' }, { send: 'MAIL FROM:<a@example.net> BODY=7BIT\r\n' }, { send: 'RSET\r\n' },
    { send: 'MAIL FROM:<a@example.net> BODY=BINARYMIME\r\n' }, { send: 'MAIL FROM:<a@example.net> BODY=8BITMIME FOO=bar\r\n' },
    { send: 'MAIL FROM:<a@example.net> SMTPUTF8\r\n' }, { send: 'MAIL FROM:<a@example.net> AUTH=<>\r\n' }, { send: 'MAIL FROM:<a@example.net> BODY=8bitmime\r\n' },
    { send: 'MAIL FROM:<>\r\n' }, QUIT,
  ],
  'out of sequence': [
    { send: 'RCPT TO:<john@example.org>\r\n' }, { send: 'DATA\r\n' }, { send: 'BDAT 2\r\nab' }, { send: 'DATA\r\n' }, { send: 'RSET\r\n' },
    { send: 'MAIL FROM:<a@example.net>\r\n' }, LHLO, { send: 'RCPT TO:<john@example.org>\r\n' }, MAIL, MAIL,
    { send: 'DATA\r\n' }, rcpt('nobody@example.org'), { send: 'DATA\r\n' }, { send: 'BDAT 1 LAST\r\nx' }, { send: 'RSET\r\n' },
    MAIL, rcpt('john@example.org'), { send: 'LHLO again\r\n' }, { send: 'DATA\r\n' }, { send: 'DATA x\r\n' }, QUIT,
  ],
  'malformed commands': [
    LHLO, { send: '\r\n' }, { send: 'Subject: x\r\n' }, { send: 'lhlo\r\n' }, { send: 'HELO x\r\n' }, { send: 'EHLO x\r\n' },
    { send: 'MAIL FROM:a@example.net\r\n' }, { send: 'MAIL FROM: <a@example.net>\r\n' }, { send: 'MAIL TO:<a@example.net>\r\n' }, { send: 'MAIL\r\n' },
    { send: 'mail from:<a@example.net>\r\n' }, { send: 'RCPT TO:john@example.org\r\n' }, { send: 'RCPT TO:<>\r\n' }, { send: 'RCPT FROM:<john@example.org>\r\n' },
    { send: 'RCPT TO:<john@example.org> NOTIFY=NEVER\r\n' }, { send: 'RCPT TO:<john@example.org> FOO=1\r\n' }, { send: 'RCPT TO:<john>\r\n' },
    { send: 'RSET\r\n' }, { send: 'RSET x\r\n' }, { send: 'QUIT x\r\n' },
  ],
  'too many bad commands': [LHLO, ...Array.from({ length: 12 }, (): Step => ({ send: 'BOGUS\r\n' }))],
  'too long lines': [LHLO, { send: `NOOP ${'x'.repeat(5000)}\r\n` }, { send: `MAIL FROM:<${'a'.repeat(600)}@example.net>\r\n` }, { send: 'NOOP\r\n' }, { send: 'x'.repeat(70000) + '\r\n' }, { send: 'NOOP\r\n' }],
  'RSET discards the transaction': [LHLO, MAIL, rcpt('john@example.org'), { send: 'RSET\r\n' }, { send: 'DATA\r\n' }, MAIL, rcpt('jane@example.org'), { send: 'DATA\r\n' },
    { send: 'Subject: marker-rset\r\n\r\nafter rset\r\n.\r\n' }, QUIT],
  'BDAT chunking': [
    LHLO, MAIL, rcpt('jane@example.org'), rcpt('john@example.org'),
    // a CRLF split between two chunks
    { send: 'BDAT 27\r\nSubject: marker-bdat\r\n\r\n.a\r' }, { send: 'BDAT 10 LAST\r\n\nb\r\nc\r\n.\r\n', replies: 2 },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT 3\r\nabc' }, { send: 'DATA\r\n' }, { send: 'RSET\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT 0 LAST\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT x\r\n' }, { send: 'BDAT 0 LAST\r\n' }, { send: 'RSET\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT\r\n' }, { send: 'BDAT 0 LAST\r\n' }, { send: 'RSET\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT 5 MORE\r\n12345' }, { send: 'BDAT 0 LAST\r\n' }, { send: 'RSET\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'BDAT 37 LAST\r\nSubject: marker-bdat-one\r\n\r\nbare\nlf\r\n' },
    MAIL, rcpt('jane@example.org'), { send: 'DATA\r\n' }, { send: 'Subject: marker-lf\n\nbare lf\n.\n' }, QUIT,
  ],
  'DATA cut mid-way': [LHLO, MAIL, rcpt('jane@example.org'), { send: 'DATA\r\n' }, { send: 'Subject: marker-cut\r\n\r\npartial line', end: true }],
  'BDAT cut mid-way': [LHLO, MAIL, rcpt('jane@example.org'), { send: 'BDAT 100 LAST\r\nSubject: marker-cutb\r\n\r\npartial', end: true }],
};

const norm = (lines: string[]): string[] => lines.map((l) => l
  .replace(/(<[^>]*> )[A-Za-z0-9+/]{22}((?::[TR]\d+)*) Saved/, '$1SID$2 Saved'));

function passwdFile(dir: string): string {
  const f = join(dir, 'users.passwd');
  writeFileSync(f, 'john@example.org:{PLAIN}pass::::::\njane@example.org:{PLAIN}pass::::::\n', { mode: 0o644 });
  return f;
}

function stored(home: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    const d = join(home, 'Maildir', sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) out.push(readFileSync(join(d, f), 'latin1')
      .replace(/\tid [A-Za-z0-9+/]{22}/, '\tid SID').replace(/; \w{3}, \d+ \w{3} \d{4} [\d:]{8} [+-]\d{4}\n/, '; DATE\n'));
  }
  return out.sort();
}

test('LMTP transcripts equal Dovecot 2.3 lmtp (unix socket and TCP), stored messages equal', async (t) => {
  const { uid, gid } = mailIds();
  const root = process.getuid?.() === 0;
  const dir = tempDir(t, 'lmtp-diff');
  chmodSync(dir, 0o755);
  const passwd = passwdFile(dir);
  for (const h of ['dv', 'sm']) { mkdirSync(join(dir, h)); if (root) chownSync(join(dir, h), uid, gid); }
  const userdb = (home: string) => `userdb {\n  driver = passwd-file\n  args = ${passwd}\n  default_fields = uid=${uid} gid=${gid} home=${home}/%u\n}`;
  const passdb = `passdb {\n  driver = passwd-file\n  args = ${passwd}\n}`;
  const common = `login_greeting = ${GREETING}\nrecipient_delimiter = +\n`;
  const dvPort = await freePort();
  const dv = setupDovecot(t, {
    start: true, protocols: 'lmtp', passdb, mailLocation: 'maildir:~/Maildir', userdb: userdb(join(dir, 'dv')),
    extraConf: `${common}service lmtp {\n  unix_listener lmtp-diff {\n    mode = 0666\n  }\n  inet_listener lmtp {\n    port = ${dvPort}\n  }\n}\n`,
  });
  if (!dv) return;
  const smPort = await freePort();
  const smSock = join(dir, 'sm-lmtp');
  const sm = await startSealmail(t, {
    passdb,
    extraConf: `${common}protocols = imap lmtp\nservice lmtp {\n  unix_listener ${smSock} {\n    mode = 0666\n  }\n  inet_listener lmtp {\n    port = ${smPort}\n  }\n}\n`,
    rewriteConf: (text) => text.replace(/userdb \{[^}]*\}/, userdb(join(dir, 'sm'))).replace(/^login_greeting = .*\n/m, ''),
  });
  const targets: [string, Target, Target][] = [['unix', { path: join(dv.dir, 'base', 'lmtp-diff') }, { path: smSock }], ['tcp', { port: dvPort }, { port: smPort }]];
  for (const [kind, dvT, smT] of targets) {
    for (const [name, steps] of Object.entries(SCRIPTS)) {
      if (kind === 'tcp' && /cut|too/.test(name)) continue;
      const want = norm(await transcript(dvT, steps));
      const got = norm(await transcript(smT, steps));
      if (process.env.LMTP_DIFF_DUMP) { appendFileSync(process.env.LMTP_DIFF_DUMP, `## ${kind}: ${name}\n--- dovecot\n${want.join('\n')}\n--- sealmail\n${got.join('\n')}\n`); continue; }
      assert.deepEqual(got, want, `${kind}: ${name}\n${sm.output().slice(-2000)}`);
    }
  }
  for (const u of ['john@example.org', 'jane@example.org']) {
    if (process.env.LMTP_DIFF_DUMP) appendFileSync(process.env.LMTP_DIFF_DUMP, `## stored ${u}\n--- dovecot\n${stored(join(dir, 'dv', u)).join('\n')}\n--- sealmail\n${stored(join(dir, 'sm', u)).join('\n')}\n`);
    const want = stored(join(dir, 'dv', u));
    const got = stored(join(dir, 'sm', u));
    assert.ok(want.length > 0);
    assert.deepEqual(got, want, u);
    assert.ok(!want.some((m) => /marker-cut/.test(m)), 'a cut stream stores nothing');
  }
});
