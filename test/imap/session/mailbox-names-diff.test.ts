/**
 * Hostile mailbox names against the real Dovecot 2.3 (lib-storage
 * mailbox_verify_name, mailbox_list_is_valid_fs_name, the name length
 * checks of mail-storage.c): control characters, NUL, a leading `~`, `/`,
 * empty and `.`/`..` levels, adjacent or leading separators, names longer
 * than 255 characters per level or 4096 in total — for CREATE, RENAME,
 * SELECT, EXAMINE, STATUS, DELETE, SUBSCRIBE, UNSUBSCRIBE and APPEND, each
 * answered as Dovecot answers (never NO [SERVERBUG]); and INBOX listed once
 * when it has children.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImapLine } from '../../helpers/imap-line.js';
import { bothImapServers, untimed } from './both-servers.js';

/** Names as IMAP literals (so that any byte gets through the parser). */
export const HOSTILE_NAMES = [
  'a\x01b', 'tab\there', 'del\x7f', '&AAE-', 'a&AH8-b', 'x.&AB8-', '~foo', '~', 'a/b', '/etc', '.a', 'a..b', 'a.', '..', 'a...', 'x.~y', 'x.. ', 'a.cur', 'cur', 'tmp', 'new',
  'x'.repeat(255), 'x'.repeat(256), 'y.' + 'x'.repeat(256), Array.from({ length: 17 }, () => 'z'.repeat(250)).join('.'), 'w'.repeat(5000), '', ' ', 'INBOX.', 'inbox..x',
  '&AOQ-', '&Jjo', 'sp ace', 'q"uote', 'back\\slash', 'star*', 'pct%',
];

const lit = (s: string) => `{${Buffer.byteLength(s, 'latin1')}+}\r\n${s}`;
const MSG = 'Subject: x\r\n\r\nbody\r\n';

export function nameCommands(name: string): string[] {
  const n = lit(name);
  return [
    `CREATE ${n}`, `SELECT ${n}`, "UNSELECT", `EXAMINE ${n}`, "UNSELECT", `STATUS ${n} (MESSAGES)`, `APPEND ${n} {${MSG.length}}`, `SUBSCRIBE ${n}`, `UNSUBSCRIBE ${n}`,
    `RENAME ${n} renamed`, `RENAME src ${n}`, `DELETE ${n}`, `DELETE renamed`,
  ];
}

async function transcript(port: number, user: string, names: string[]): Promise<string[]> {
  const c = await ImapLine.open(port);
  try {
    await c.cmd('l', `LOGIN ${user} pass`);
    await c.cmd('c', 'CREATE src');
    const out: string[] = [];
    let i = 0;
    for (const name of names) {
      for (const cmd of nameCommands(name)) {
        const tag = `t${i++}`;
        let r: string;
        if (cmd.startsWith('APPEND')) {
          // a synchronising literal: the message goes only after the server's `+` (a refused name answers first)
          c.sock.write(`${tag} ${cmd}\r\n`);
          r = await c.until(new RegExp(`(^\\+ .*\r\n$)|(^|\r\n)${tag} (OK|NO|BAD)[^\r\n]*\r\n`), `APPEND ${tag}`);
          if (r.startsWith('+')) { c.sock.write(`${MSG}\r\n`); r = await c.until(new RegExp(`(^|\r\n)${tag} (OK|NO|BAD)[^\r\n]*\r\n$`), `APPEND ${tag}`); }
          // whatever else the refusal causes comes before the NOOP's reply
          // (Dovecot then reads the literal's line end as a command: `* BAD Error in IMAP tag: Invalid tag`)
          r = (r + await c.cmd(`${tag}n`, 'NOOP')).replace(/\* BAD Error in IMAP tag: Invalid tag[^\r]*\r\n/, '');
        } else r = await c.cmd(tag, cmd);
        out.push(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 20)}…(${name.length})` : name)} ${cmd.split(' ')[0]}: ${untimed(r).replace(/UIDVALIDITY \d+/g, 'UIDVALIDITY n').replace(/\[APPENDUID \d+ \d+\]/, '[APPENDUID n n]')}`);
      }
    }
    for (const cmd of ['STATUS nosuch (MESSAGES)', 'SUBSCRIBE nosuch', 'UNSUBSCRIBE nosuch', 'SELECT nosuch', 'DELETE nosuch', 'RENAME nosuch x', 'CREATE "a b."', 'CREATE INBOX.child', 'LIST "" "*"', 'LIST "" "%"', 'LIST "" "INBOX*"', 'LSUB "" "*"', 'LIST (SUBSCRIBED) "" "*"', 'SUBSCRIBE INBOX', 'LSUB "" "*"']) {
      out.push(`${cmd}: ${untimed(await c.cmd(`t${i++}`, cmd))}`);
    }
    return out;
  } finally { c.close(); }
}

test('hostile mailbox names and INBOX with children answer as Dovecot', async (t) => {
  const ports = await bothImapServers(t);
  if (!ports) return;
  const theirs = await transcript(ports.dovecot, 'u@example.org', HOSTILE_NAMES);
  const ours = await transcript(ports.sealmail, 'u@example.org', HOSTILE_NAMES);
  if (process.env.NAMES_OUT) { (await import('node:fs')).writeFileSync(`${process.env.NAMES_OUT}.dovecot`, theirs.join('\n')); (await import('node:fs')).writeFileSync(`${process.env.NAMES_OUT}.sealmail`, ours.join('\n')); }
  assert.equal(ours.length, theirs.length);
  for (let i = 0; i < ours.length; i++) {
    // Dovecot 2.3 fails DELETE/RENAME of a name too long for the filesystem with SERVERBUG (ENAMETOOLONG); Sealmail: it doesn't exist
    if (/SERVERBUG/.test(theirs[i])) assert.match(ours[i], /NO \[NONEXISTENT\] Mailbox doesn't exist: /, theirs[i]);
    else assert.equal(ours[i], theirs[i]);
  }
  assert.doesNotMatch(ours.join('\n'), /SERVERBUG/);
  // NUL: Dovecot cuts the name there (C string) and acts on "nul"; Sealmail refuses it like any control character
  const c = await ImapLine.open(ports.sealmail);
  t.after(() => c.close());
  await c.cmd('l', 'LOGIN u@example.org pass');
  for (const [k, cmd] of nameCommands('nul\x00x').filter((x) => !x.startsWith('APPEND') && x !== 'UNSELECT' && !x.endsWith(' renamed')).entries()) {
    assert.match(await c.cmd(`n${k}`, cmd), new RegExp(`n${k} NO Mailbox name is not valid mUTF-7[. ]`), cmd);
  }
  assert.doesNotMatch(await c.cmd('nl', 'LIST "" "*"'), /nul/);
});
