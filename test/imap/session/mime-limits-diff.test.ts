/**
 * MIME nesting depth and part count caps against the real Dovecot 2.3
 * (lib-mail/message-parser.h: 100 nested parts, 10000 parts in total;
 * beyond them the rest is body and the part that would have been a
 * container shows as application/octet-stream). A 10,000-deep and a
 * 100,000-part message are appended to both servers; BODYSTRUCTURE and
 * BODY[section] around the caps must answer identically, and the session
 * stays usable (the reply comes within the client's bounded wait).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { ImapLine } from '../../helpers/imap-line.js';

/** `depth` multiparts each holding the next, a text leaf at the bottom. */
export function deepMessage(depth: number): string {
  let head = 'From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n';
  let tail = '';
  for (let i = 0; i < depth; i++) {
    head += `Content-Type: multipart/mixed; boundary="b${i}z"\r\n\r\n--b${i}z\r\n`;
    tail = `\r\n--b${i}z--\r\n` + tail;
  }
  return head + 'Content-Type: text/plain\r\n\r\nleaf' + tail;
}

/** One multipart with `n` small text parts. */
export function wideMessage(n: number): string {
  const parts: string[] = ['From: a@example.org\r\nSubject: wide\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="w"\r\n\r\n'];
  for (let i = 1; i <= n; i++) parts.push(`--w\r\n\r\np${i}\r\n`);
  parts.push('--w--\r\n');
  return parts.join('');
}

/** An rfc822 message nested `depth` times. */
function rfc822Message(depth: number): string {
  let m = 'Subject: inner\r\n\r\nbody\r\n';
  for (let i = 0; i < depth; i++) m = `Subject: s${i}\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n${m}`;
  return m;
}

const section = (depth: number) => Array.from({ length: depth }, () => '1').join('.');

async function transcript(port: number, user: string, messages: string[], commands: string[]): Promise<string[]> {
  const c = await ImapLine.open(port);
  try {
    await c.cmd('l', `LOGIN ${user} pass`);
    for (const m of messages) await c.cmd('a', `APPEND INBOX {${Buffer.byteLength(m, 'latin1')}+}\r\n${m}`);
    await c.cmd('s', 'SELECT INBOX');
    const out: string[] = [];
    for (const [i, cmd] of commands.entries()) {
      const t0 = Date.now();
      const r = await c.cmd(`t${i}`, cmd);
      if (process.env.MIME_TIMES) console.log(port, cmd.slice(0, 40), Date.now() - t0, 'ms');
      out.push(r.replace(/ \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/g, ''));
    }
    return out;
  } finally { c.close(); }
}

test('BODYSTRUCTURE and BODY[n] past the MIME depth and part caps answer as Dovecot', async (t) => {
  const port = await freePort();
  const dv = setupDovecot(t, {
    start: true,
    protocols: 'imap',
    extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n`,
  });
  if (!dv) return;
  const seal = await startSealmail(t);
  const messages = [deepMessage(10_000), wideMessage(100_000), deepMessage(99), deepMessage(100), rfc822Message(150), wideMessage(10_001)];
  const commands = [
    'FETCH 1 (BODYSTRUCTURE)', `FETCH 1 (BODY[${section(98)}] BODY[${section(99)}] BODY[${section(100)}.MIME] BODY[${section(101)}])`,
    'FETCH 2 (BODYSTRUCTURE)', 'FETCH 2 (BODY[9998] BODY[9999] BODY[10000] BODY[100000])',
    'FETCH 3 (BODYSTRUCTURE BODY)', 'FETCH 4 (BODYSTRUCTURE BODY)', `FETCH 4 (BODY[${section(99)}] BODY[${section(99)}.MIME])`,
    'FETCH 5 (BODYSTRUCTURE)', `FETCH 5 (BODY[${section(98)}.HEADER] BODY[${section(99)}.TEXT] BODY[${section(100)}])`,
    'FETCH 6 (BODYSTRUCTURE)', 'FETCH 6 (BODY[9999] BODY[10000])',
  ];
  const theirs = await transcript(port, 'u@example.org', messages, commands);
  const ours = await transcript(seal.imapPort, 'u@example.org', messages, commands);
  for (let i = 0; i < commands.length; i++) {
    if (ours[i] !== theirs[i]) {
      let k = 0;
      while (ours[i][k] === theirs[i][k]) k++;
      assert.fail(`${commands[i]}: differs at ${k}:\nDovecot:  ${JSON.stringify(theirs[i].slice(Math.max(0, k - 200), k + 200))}\nSealmail: ${JSON.stringify(ours[i].slice(Math.max(0, k - 200), k + 200))}`);
    }
  }
});
