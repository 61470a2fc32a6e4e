/**
 * Before login Dovecot's imap-login process answers, with its own texts and
 * rules; after it, the imap process. Each case here runs on a fresh
 * connection to the real Dovecot 2.3 and to Sealmail, and the transcripts
 * must be identical once capability lists are folded (each server lists its
 * own extensions) and timing suffixes are reduced to their presence.
 * Covered: every pre-login command and its error shapes, SASL-IR and
 * continuation responses, the third invalid command's BYE, the tag-is-LOGIN
 * hint, the login reply after a pre-login CAPABILITY, and after login the
 * unknown-command and wrong-state texts and the BYE after 20 bad commands in
 * a row.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';

const LOGIN = 'a LOGIN u@example.org pass';
const times = (n: number, line: (i: number) => string) => Array.from({ length: n }, (_, i) => line(i + 1));

const CASES: string[][] = [
  ['a CAPABILITY'], ['a NOOP'], ['a NOOP extra'], ['a noop'], ['a LOGOUT'], ['a LOGOUT extra'],
  ['a ENABLE CONDSTORE'], ['a ID NIL'], ['a ID ("name" "x")'], ['a ID ("name")'], ['a ID foo'],
  ['a FOO'], ['a SELECT INBOX'], ['a'], [''], ['+ NOOP'], ['LOGIN x y'], ['a FOO', 'b FOO', 'c FOO'],
  ['a FOO', 'b NOOP', 'c FOO', 'd FOO'],
  ['a LOGIN'], ['a LOGIN x'], ['a LOGIN x y z'], ['a LOGIN (x) y'],
  ['a AUTHENTICATE'], ['a AUTHENTICATE PLAIN !!!'], ['a AUTHENTICATE PLAIN x y'], ['a AUTHENTICATE LOGIN'],
  ['a AUTHENTICATE "PLAIN"'], ['a AUTHENTICATE PLAIN', '*'], ['a AUTHENTICATE PLAIN', '!!!'],
  ['a NOOP "unterminated'], ['a NOOP ('], ['a NOOP )'],
  [LOGIN], ['a CAPABILITY', 'b LOGIN u@example.org pass'], ['a LOGIN {13}', 'u@example.org {4}', 'pass'],
  ['a LOGIN {13+}\r\nu@example.org pass'], ['a AUTHENTICATE PLAIN AHVAZXhhbXBsZS5vcmcAcGFzcw=='],
  ['a AUTHENTICATE PLAIN', 'AHVAZXhhbXBsZS5vcmcAcGFzcw=='],
  ['a FOO', LOGIN, 'c FOO', 'd FOO', 'e FOO'],
  [LOGIN, 'b foo', 'c uid foo', 'd fetch 1 flags', 'e ENABLE', 'f UID', 'g LOGIN a b', 'h STARTTLS', 'i CAPABILITY extra', 'j ENABLE FOO', 'k LOGOUT'],
  [LOGIN, ...times(21, (i) => `x${i} FOO`)],
  [LOGIN, ...times(12, (i) => `x${i} FOO`), 'b NOOP', ...times(12, (i) => `y${i} SELECT`)],
];

/**
 * Sends each line and waits for the reply that ends it: a tagged status, a
 * continuation request or BYE (a login may be held back by the auth
 * penalty), then for the server to be quiet; returns what it said.
 */
async function converse(port: number, lines: string[]): Promise<string> {
  const sock = connect(port, '127.0.0.1');
  let buf = '';
  let closed = false;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { buf += d; });
  sock.on('close', () => { closed = true; });
  sock.on('error', () => undefined);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const until = async (done: () => boolean) => {
    for (const end = Date.now() + 20_000; !done() && !closed;) {
      if (Date.now() > end) throw new Error(`no reply; got ${JSON.stringify(buf)}`);
      await sleep(20);
    }
    for (let last = -1; buf.length !== last;) { last = buf.length; await sleep(100); } // untagged lines after it
  };
  await until(() => /^\* OK .*\r\n/.test(buf));
  buf = '';
  for (const line of lines) {
    const from = buf.length;
    sock.write(`${line}\r\n`);
    await until(() => /^(?:\S+ (?:OK|NO|BAD) |\+ |\* BYE ).*\r\n/m.test(buf.slice(from)));
  }
  sock.destroy();
  return buf
    .replace(/\[CAPABILITY [^\]]*\]/g, '[CAPABILITY …]')
    .replace(/^\* CAPABILITY .*$/gm, '* CAPABILITY …')
    .replace(/\(\d+\.\d+ \+ \d+\.\d+ secs\)/g, '(t)');
}

test('before and right after login, Sealmail answers as Dovecot\'s imap-login and imap do', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
  if (!dv) return;
  const seal = await startSealmail(t); // with TLS, Dovecot's without: the folded capability lists hide STARTTLS
  const diffs: string[] = [];
  // cases run in parallel; each waits for its replies, however long an auth penalty holds them
  await Promise.all(CASES.map(async (lines) => {
    const [theirs, ours] = await Promise.all([converse(port, lines), converse(seal.imapPort, lines)]);
    if (theirs !== ours) diffs.push(`${JSON.stringify(lines)}\n  Dovecot:  ${JSON.stringify(theirs)}\n  Sealmail: ${JSON.stringify(ours)}`);
  }));
  assert.equal(diffs.join('\n'), '');
});
