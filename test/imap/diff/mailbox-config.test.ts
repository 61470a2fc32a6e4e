/**
 * Differential scripts that need a mail configuration beyond the default
 * (test/fixtures/imap-diff/config-scripts): the same `namespace inbox`
 * with `mailbox` sections given to the real Dovecot 2.3 and to Sealmail,
 * then the script runs in lock-step on both (test/helpers/imap-diff.ts) and
 * the normalised transcripts must be identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { compareTranscripts, diffDir, fixedUidValidities, normalise, parseScript, runScript, writeMaildir } from '../../helpers/imap-diff.js';

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
