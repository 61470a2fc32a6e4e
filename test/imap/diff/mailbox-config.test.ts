/**
 * Differential scripts that need a mail configuration beyond the default
 * (test/fixtures/imap-diff/config-scripts): the same `namespace inbox`
 * with `mailbox` sections given to the real Dovecot 2.3 and to Sealmail,
 * then the script runs in lock-step on both (test/helpers/imap-diff.ts) and
 * the normalised transcripts must be identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { compareTranscripts, diffDir, fixedUidValidities, normalise, parseScript, runScript, writeMaildir } from '../../helpers/imap-diff.js';
import { assertSameTranscript, lockstep, normaliseTranscript } from '../../helpers/imap-lockstep.js';

const SPECIAL_USE = `namespace inbox {
  inbox = yes
  separator = .
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Archive.2026 {
    special_use = \\Archive
  }
}
`;

/** ISPmail's conf.d/15-mailboxes.conf: the four folders subscribed automatically, plus an auto-created child. */
const AUTO = `namespace inbox {
  inbox = yes
  separator = .
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Archive.Auto {
    auto = create
  }
}
`;

async function runBoth(t: import('node:test').TestContext, scriptFile: string, conf: string): Promise<void> {
  const script = parseScript(scriptFile, readFileSync(join(diffDir, 'config-scripts', scriptFile), 'utf8'));
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${conf}` });
  if (!dv) return;
  const seal = await startSealmail(t, { extraConf: conf });
  const user = 'cfg@example.org';
  writeMaildir(dv.home(user), script);
  writeMaildir(seal.home(user), script);
  const theirs = await runScript(script, { name: 'Dovecot', port, user, password: 'pass' });
  const ours = await runScript(script, { name: 'Sealmail', port: seal.imapPort, user, password: 'pass' });
  const fixed = fixedUidValidities(script);
  const report = compareTranscripts(script, normalise(theirs, fixed), normalise(ours, fixed), ['Dovecot', 'Sealmail']);
  if (report) assert.fail(report);
}

test('LIST-EXTENDED, LIST-STATUS and special-use as Dovecot answers them', (t) => runBoth(t, 'list-extended.imap', SPECIAL_USE));

const METADATA = `imap_metadata = yes
mail_attribute_dict = file:%h/dovecot-attributes
mail_server_comment = Sealmail test server
`;

test('METADATA (GETMETADATA/SETMETADATA) as Dovecot answers them', (t) => runBoth(t, 'metadata.imap', SPECIAL_USE + METADATA));

test('auto = create|subscribe mailboxes as Dovecot shows and creates them', (t) => runBoth(t, 'auto-mailboxes.imap', AUTO));

test('autoexpunge: at the end of a session, messages saved longer ago than the limit are gone, as in Dovecot', async (t) => {
  const conf = 'namespace inbox {\n  inbox = yes\n  separator = .\n  mailbox Trash {\n    special_use = \\Trash\n    autoexpunge = 2s\n  }\n}\n';
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${conf}` });
  if (!dv) return;
  const seal = await startSealmail(t, { extraConf: conf });
  const msg = (s: string) => `Subject: ${s}\r\n\r\nbody\r\n`;
  const lit = (s: string) => `{${s.length}+}\r\n${s}`;
  const first = ['a1 CREATE Trash', `a2 APPEND Trash ${lit(msg('one'))}`, `a3 APPEND Trash ${lit(msg('two'))}`, `a4 APPEND INBOX ${lit(msg('kept'))}`, 'a5 STATUS Trash (MESSAGES)', 'a6 LOGOUT'];
  const check = ['c1 STATUS Trash (MESSAGES)', 'c2 STATUS INBOX (MESSAGES)'];
  const user = 'ae@example.org';
  // the expunge runs after the session is gone: wait for Trash to empty on disk (not another
  // session, whose own end would expunge too); at most 15 s, then the STATUS shows what is left
  const trashEmptied = async (home: string) => {
    const trash = join(home, 'Maildir', '.Trash');
    const count = () => ['cur', 'new'].reduce((n, d) => { try { return n + readdirSync(join(trash, d)).length; } catch { return n; } }, 0);
    for (const end = Date.now() + 15_000; count() > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
  };
  const sessions = async (p: number, home: string): Promise<string[]> => {
    const out = [normaliseTranscript(await lockstep(p, first, user))];
    out.push(normaliseTranscript(await lockstep(p, check, user))); // too young yet
    await new Promise((r) => setTimeout(r, 3000)); // the messages' age passes autoexpunge = 2s
    await lockstep(p, ['b1 NOOP'], user); // this session's end expunges
    await trashEmptied(home);
    out.push(normaliseTranscript(await lockstep(p, check, user)));
    return out.flat();
  };
  const [theirs, ours] = await Promise.all([sessions(port, dv.home(user)), sessions(seal.imapPort, seal.home(user))]);
  assertSameTranscript(ours, theirs);
  assert.ok(ours.includes('* STATUS Trash (MESSAGES 2)') && ours.includes('* STATUS Trash (MESSAGES 0)') && ours.filter((l) => l === '* STATUS INBOX (MESSAGES 1)').length === 2, ours.join('\n'));
});
