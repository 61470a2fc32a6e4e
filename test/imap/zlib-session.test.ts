/**
 * The zlib plugin over IMAP against a Sealmail server: mail Dovecot stored
 * compressed (fixtures from test/fixtures/dovecot-zlib) is served with
 * Dovecot's RFC822.SIZE, BODY[], BINARY and found by SEARCH BODY; APPEND
 * and LMTP delivery with zlib_save compress; a truncated file makes that FETCH answer
 * NO [SERVERBUG] (logged with user, mailbox and UID) while the session and
 * the other messages go on, and a broken one over 1 MiB (streamed: its
 * literal size is already out) disconnects as Dovecot; start-up names the zlib_save Sealmail cannot
 * write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { LmtpWire } from '../helpers/lmtp-wire.js';
import { freePort } from '../helpers/databases.js';
import { logged } from '../helpers/line-wire.js';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { lockstep } from '../helpers/imap-lockstep.js';
import { mailIds } from '../helpers/dovecot.js';
import { fixturesDir } from '../helpers/paths.js';
import { detectCompression } from '../../src/mailstore/compression/formats.js';

const FIX = join(fixturesDir, 'dovecot-zlib');
const USER = 'bob@example.org';

test('compressed mail over IMAP: sizes, bodies, SEARCH, APPEND, and a broken file', async (t) => {
  const manifest = JSON.parse(readFileSync(join(FIX, 'manifest.json'), 'utf8')) as { file: string; plaintext: string; dovecotName: string }[];
  const used = ['small.zstd', 'large.bz2', 'small.xz', 'small.gz'].map((f) => manifest.find((m) => m.file === f)!);
  let maildir = '';
  const lmtpPort = await freePort();
  const big = Buffer.from(`Subject: big\n\n${'a line of a big message, compressed\n'.repeat(60_000)}`);
  const bigLines = big.toString('latin1').split('\n').length - 1;
  const bigGz = gzipSync(big);
  const srv = await startSealmail(t, {
    extraConf: `protocols = imap lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = ${lmtpPort}\n    address = 127.0.0.1\n  }\n}\nmail_plugins = $mail_plugins zlib\nplugin {\n  zlib_save = zstd\n  zlib_save_level = 19\n}\n`,
    beforeStart: (dir) => {
      maildir = join(dir, 'home', USER, 'Maildir');
      const { uid, gid } = mailIds();
      for (const d of [join(dir, 'home', USER), maildir, ...['cur', 'new', 'tmp'].map((s) => join(maildir, s))]) {
        mkdirSync(d, { recursive: true });
        if (process.getuid?.() === 0) chownSync(d, uid, gid);
      }
      used.forEach((m, i) => copyFileSync(join(FIX, m.file), join(maildir, 'new', `170000000${i}.M${i}P1.host${m.dovecotName}`)));
      // over 1 MiB, gz, cut short
      writeFileSync(join(maildir, 'new', `1700000009.M9P1.host,S=${big.length},W=${big.length + bigLines}`), bigGz.subarray(0, bigGz.length >> 1));
    },
  });
  // the last one, a gz file, loses its end
  const gzFile = join(maildir, 'new', readdirSync(join(maildir, 'new')).sort()[3]);
  assert.match(gzFile, /1700000003/);
  truncateSync(gzFile, statSync(gzFile).size - 12);
  const brokenBytes = readFileSync(gzFile);
  assert.match(srv.output(), /zlib_save = zstd: Sealmail reads zstd but cannot write it; new mail is saved as gz \(level 6\)/);

  const plain = used.map((m) => readFileSync(join(FIX, m.plaintext), 'latin1'));
  const crlf = (s: string) => s.replace(/\n/g, '\r\n');
  const appended = 'Subject: appended\r\n\r\nappended over IMAP\r\n';
  const out = await lockstep(srv.imapPort, [
    'a SELECT INBOX',
    'b FETCH 1:4 (RFC822.SIZE)',
    'c FETCH 1 BODY.PEEK[]',
    'd FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BINARY.PEEK[1]<0.20>)',
    'e SEARCH 1:3 BODY "stored compressed"',
    'f FETCH 4 BODY.PEEK[]',
    'g NOOP',
    'h FETCH 3 BODY.PEEK[TEXT]',
    `i APPEND INBOX {${appended.length}+}\r\n${appended}`,
    'j FETCH 6 (RFC822.SIZE BODY.PEEK[])',
  ], USER);
  const sizes = plain.map((p) => p.length + p.split('\n').length - 1);
  for (let i = 0; i < 4; i++) assert.ok(out.includes(`* ${i + 1} FETCH (RFC822.SIZE ${sizes[i]})`), `size of ${i + 1}`);
  assert.ok(out.includes(`* 1 FETCH (BODY[] {${sizes[0]}}\r\n${crlf(plain[0])})`), 'zstd body');
  assert.ok(out.includes('* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {39}\r\nSubject: a large compressed message\r\n\r\n'), 'bz2 header');
  assert.ok(out.includes(`BINARY[1]<0> {20}\r\n${crlf(plain[1].split('\n\n')[1]).slice(0, 20)})`), 'bz2 binary');
  // the small ones say "stored compressed" (the large one does not)
  assert.match(out, /\* SEARCH 1 3\r\n/);
  assert.match(out, /f NO \[SERVERBUG\] Internal error occurred\. Refer to server log for more information/);
  assert.match(out, /g OK /);
  assert.ok(out.includes(`* 3 FETCH (BODY[TEXT] {${crlf(plain[2].split('\n\n').slice(1).join('\n\n')).length}}`), 'xz text after the failure');
  assert.match(out, /i OK \[APPENDUID \d+ 6\] Append completed/);
  assert.ok(out.includes(`* 6 FETCH (RFC822.SIZE ${appended.length} BODY[] {${appended.length}}\r\n${appended})`), 'appended mail reads back');
  // the broken file is named in the log and left as it was
  assert.match(srv.output(), /user bob@example\.org: Mailbox INBOX: UID 4: read\(compress\(.*\)\) failed: /);
  const stillThere = ['new', 'cur'].flatMap((s) => readdirSync(join(maildir, s)).map((f) => join(maildir, s, f)));
  assert.ok(stillThere.some((p) => readFileSync(p).equals(brokenBytes)), 'the broken file is unchanged');
  // APPEND saved gz (zstd cannot be written, said at start)
  const newest = stillThere.filter((p) => !readFileSync(p).equals(brokenBytes) && !/1700000009/.test(p)).map((p) => readFileSync(p)).filter((b) => detectCompression(b) === 'gz');
  assert.equal(newest.length, 1);

  // the broken big one: its literal is streamed, so the failure comes after its size went out:
  // the connection is closed (Dovecot: "FETCH read() failed"), no reply that the client would take for literal data
  const raw = await new Promise<string>((resolve, reject) => {
    const sock = connect(srv.imapPort, '127.0.0.1');
    let got = '';
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.endsWith('Sealmail test ready.\r\n')) sock.write(`a LOGIN ${USER} pass\r\nb SELECT INBOX\r\nc FETCH 5 BODY.PEEK[]\r\n`);
    });
    sock.on('close', () => resolve(got));
    sock.on('error', reject);
    setTimeout(() => { sock.destroy(); reject(new Error(`no disconnect: ${got.slice(-300)}`)); }, 60_000).unref();
  });
  const W = big.length + bigLines;
  assert.ok(raw.includes(`* 5 FETCH (BODY[] {${W}}\r\nSubject: big\r\n`), raw.slice(0, 2000));
  assert.doesNotMatch(raw, /^c (OK|NO|BAD)/m);
  assert.ok(raw.length < 1700 + W, 'the literal was cut short by the disconnect');
  await logged(srv, /Disconnected: FETCH read\(\) failed/, 'disconnect logged');

  // an LMTP delivery is saved compressed too (gz here), and reads back
  const before = new Set(['new', 'cur'].flatMap((sub) => readdirSync(join(maildir, sub))));
  const w = new LmtpWire(lmtpPort);
  t.after(() => w.sock.destroy());
  await w.hello();
  await w.send('MAIL FROM:<alice@example.org>\r\n', /^250 .*\r\n/m);
  await w.send(`RCPT TO:<${USER}>\r\n`, /^250 .*\r\n/m);
  await w.send('DATA\r\n', /^354 .*\r\n/m);
  await w.send('Subject: by LMTP\r\n\r\ndelivered over LMTP\r\n.\r\n', /^250 .*\r\n/m);
  const delivered = ['new', 'cur'].flatMap((sub) => readdirSync(join(maildir, sub)).filter((f) => !before.has(f)).map((f) => join(maildir, sub, f)));
  assert.equal(delivered.length, 1);
  const stored = readFileSync(delivered[0]);
  assert.equal(detectCompression(stored), 'gz');
  const text = gunzipSync(stored).toString('latin1');
  assert.match(text, /Subject: by LMTP\n\ndelivered over LMTP\n$/);
  assert.match(delivered[0], new RegExp(`,S=${text.length},W=${text.length + text.split('\n').length - 1}`));
});
