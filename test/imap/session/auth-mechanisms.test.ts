/**
 * `auth_mechanisms` before login, against the real Dovecot 2.3: the AUTH=
 * capabilities in the setting's order, LOGINDISABLED when PLAIN is missing
 * (Dovecot's LOGIN command is a PLAIN authentication), and
 * `NO [ALERT] Unsupported authentication mechanism.` for a mechanism that is
 * not enabled, for AUTHENTICATE and for LOGIN alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { ImapLine } from '../../helpers/imap-line.js';

/** The pre-login conversation, reduced to what both servers must say alike. */
async function converse(port: number): Promise<string[]> {
  const sock = await import('node:net').then((n) => n.connect(port, '127.0.0.1'));
  const c = new ImapLine(sock);
  const greeting = await c.until(/^\* OK .*\r\n/, 'greeting');
  const out = [greeting.replace(/\] .*/s, ']')];
  out.push(await c.cmd('a', 'CAPABILITY'));
  // a mechanism that is enabled asks for data (a challenge, the user name); the client gives up
  const authenticate = async (tag: string, mech: string): Promise<string> => {
    sock.write(`${tag} AUTHENTICATE ${mech}\r\n`);
    const first = await c.until(new RegExp(`^(\\+ .*|${tag} (OK|NO|BAD) .*)\r\n`, 'm'), `reply to AUTHENTICATE ${mech}`);
    if (!first.startsWith('+')) return first;
    sock.write('*\r\n');
    return '+ (challenge)\r\n' + await c.until(new RegExp(`^${tag} .*\r\n`, 'm'), 'reply to *');
  };
  out.push(await authenticate('b', 'CRAM-MD5'));
  out.push(await authenticate('c', 'LOGIN'));
  // only the tagged line: the untagged post-login CAPABILITY lists each server's extensions
  const login = await c.cmd('d', 'LOGIN mech@example.org pass');
  out.push(/^d .*$/m.exec(login)?.[0] ?? login);
  c.close();
  // IMAP4rev2 is beyond Dovecot 2.3; the test's Dovecot has no TLS, so no STARTTLS
  return out.map((l) => l.replace(/ IMAP4rev2| STARTTLS/g, ''));
}

for (const mechs of ['plain', 'login', 'login plain', 'plain login cram-md5']) {
  test(`auth_mechanisms = ${mechs}: pre-login answers as Dovecot's`, async (t) => {
    const port = await freePort();
    const conf = `auth_mechanisms = ${mechs}\n`;
    const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `${conf}service imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n` });
    if (!dv) return;
    const seal = await startSealmail(t, { extraConf: conf });
    const theirs = await converse(port);
    const ours = await converse(seal.imapPort);
    if (mechs.includes('cram-md5')) {
      // Dovecot offers CRAM-MD5 (and would need plaintext or CRAM-MD5 hashes); Sealmail implements PLAIN and LOGIN only
      assert.match(theirs[0], /AUTH=CRAM-MD5/);
      assert.doesNotMatch(ours[0], /AUTH=CRAM-MD5/);
      assert.equal(ours[0], theirs[0].replace(' AUTH=CRAM-MD5', ''));
      assert.deepEqual(ours.slice(3), theirs.slice(3));
      return;
    }
    assert.deepEqual(ours, theirs);
  });
}
