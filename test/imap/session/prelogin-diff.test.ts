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
import { foldTiming } from '../../helpers/dovecot-timing.js';

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
 * penalty). Whatever a line makes the server say after that (a BYE after the
 * third invalid command) arrives before the next reply; after the last line a
 * LOGOUT marks the end (no quiet-period guess), and its own answer is cut off.
 * Returns what the server said.
 */
async function converse(port: number, lines: string[]): Promise<string> {
  const sock = connect(port, '127.0.0.1');
  let buf = '';
  let closed = false;
  let wake = (): void => undefined;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => { buf += d; wake(); });
  sock.on('close', () => { closed = true; wake(); });
  sock.on('error', () => undefined);
  const until = async (done: () => boolean) => {
    const end = Date.now() + 20_000;
    while (!done() && !closed) {
      if (Date.now() > end) throw new Error(`no reply; got ${JSON.stringify(buf)}`);
      await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
    }
  };
  await until(() => /^\* OK .*\r\n/.test(buf));
  buf = '';
  for (const line of lines) {
    const from = buf.length;
    sock.write(`${line}\r\n`);
    await until(() => /^(?:\S+ (?:OK|NO|BAD) |\+ |\* BYE ).*\r\n/m.test(buf.slice(from)));
  }
  const END = /\* BYE Logging out\r\nzz OK Logout completed[^\r\n]*\r\n$/;
  if (!closed) {
    // a SASL exchange still open would take LOGOUT as its answer: cancel it first ("*"), on both servers alike
    const pending = /(?:^|\r\n)\+ [^\r\n]*\r\n$/.test(buf) ? '*\r\n' : '';
    sock.write(`${pending}zz LOGOUT\r\n`);
    await until(() => END.test(buf));
  }
  sock.destroy();
  return foldTiming(buf.replace(END, ''), ' (t)')
    .replace(/\[CAPABILITY [^\]]*\]/g, '[CAPABILITY …]')
    .replace(/^\* CAPABILITY .*$/gm, '* CAPABILITY …');
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
