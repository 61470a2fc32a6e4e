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
import { ImapLine } from '../../helpers/imap-line.js';
import { bothImapServers, untimed } from './both-servers.js';
import { deepMessage, rfc822Message, wideMessage } from './hostile-messages.js';

const section = (depth: number) => Array.from({ length: depth }, () => '1').join('.');

async function transcript(port: number, user: string, messages: string[], commands: string[]): Promise<string[]> {
  const c = await ImapLine.open(port);
  try {
    await c.cmd('l', `LOGIN ${user} pass`);
    for (const m of messages) await c.cmd('a', `APPEND INBOX {${Buffer.byteLength(m, 'latin1')}+}\r\n${m}`);
    await c.cmd('s', 'SELECT INBOX');
    const out: string[] = [];
    for (const [i, cmd] of commands.entries()) {
      const r = await c.cmd(`t${i}`, cmd);
      out.push(untimed(r));
    }
    return out;
  } finally { c.close(); }
}

test('BODYSTRUCTURE and BODY[n] past the MIME depth and part caps answer as Dovecot', async (t) => {
  const ports = await bothImapServers(t);
  if (!ports) return;
  const messages = [deepMessage(10_000), wideMessage(100_000), deepMessage(99), deepMessage(100), rfc822Message(150), wideMessage(10_001)];
  const commands = [
    'FETCH 1 (BODYSTRUCTURE)', `FETCH 1 (BODY[${section(98)}] BODY[${section(99)}] BODY[${section(100)}.MIME] BODY[${section(101)}])`,
    'FETCH 2 (BODYSTRUCTURE)', 'FETCH 2 (BODY[9998] BODY[9999] BODY[10000] BODY[100000])',
    'FETCH 3 (BODYSTRUCTURE BODY)', 'FETCH 4 (BODYSTRUCTURE BODY)', `FETCH 4 (BODY[${section(99)}] BODY[${section(99)}.MIME])`,
    'FETCH 5 (BODYSTRUCTURE)', `FETCH 5 (BODY[${section(98)}.HEADER] BODY[${section(99)}.TEXT] BODY[${section(100)}])`,
    'FETCH 6 (BODYSTRUCTURE)', 'FETCH 6 (BODY[9999] BODY[10000])',
  ];
  const theirs = await transcript(ports.dovecot, 'u@example.org', messages, commands);
  const ours = await transcript(ports.sealmail, 'u@example.org', messages, commands);
  for (let i = 0; i < commands.length; i++) {
    if (ours[i] !== theirs[i]) {
      let k = 0;
      while (ours[i][k] === theirs[i][k]) k++;
      assert.fail(`${commands[i]}: differs at ${k}:\nDovecot:  ${JSON.stringify(theirs[i].slice(Math.max(0, k - 200), k + 200))}\nSealmail: ${JSON.stringify(ours[i].slice(Math.max(0, k - 200), k + 200))}`);
    }
  }
});
