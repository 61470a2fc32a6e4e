/**
 * Namespaces as Dovecot 2.3 serves them (mail-namespace.c, cmd-namespace.c,
 * cmd-list.c): the same `namespace` sections given to the real Dovecot and
 * to Sealmail, a script from test/fixtures/imap-diff/config-scripts run on
 * both over the same Maildir, transcripts compared line by line. Covers
 * separator "/" on Maildir++ and LAYOUT=fs, the Courier prefix "INBOX.",
 * an inbox namespace plus an "Archive/" one with its own location,
 * hidden and list = children namespaces; and folders one server made on
 * disk are listed and opened by the other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupDovecot } from '../../helpers/dovecot.js';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { freePort } from '../../helpers/databases.js';
import { compareTranscripts, diffDir, fixedUidValidities, normalise, parseScript, runScript, writeMaildir } from '../../helpers/imap-diff.js';

/** The directories under a home (message directories' contents left out) and every subscriptions file: what both servers must leave the same. */
function diskShape(home: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) { out.push(`${r}/`); if (!['cur', 'new', 'tmp'].includes(e.name)) walk(join(dir, e.name), r); } else if (e.name === 'subscriptions') out.push(`${r}: ${JSON.stringify(readFileSync(join(dir, e.name), 'utf8'))}`);
    }
  };
  if (existsSync(home)) walk(home, '');
  return out.sort();
}

interface Run { theirs: string[]; ours: string[]; dvHome: string; sealHome: string }

/** Run one config script on both servers (each on its own copy of the script's Maildir); fails on any difference. */
async function runBoth(t: import('node:test').TestContext, scriptFile: string, conf: string, mailLocation?: string): Promise<Run> {
  const script = parseScript(scriptFile, readFileSync(join(diffDir, 'config-scripts', scriptFile), 'utf8'));
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', ...(mailLocation ? { mailLocation: mailLocation.replace('~', '%h') } : {}), extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${conf}` });
  if (!dv) return { theirs: [], ours: [], dvHome: '', sealHome: '' };
  const seal = await startSealmail(t, { extraConf: conf, rewriteConf: mailLocation ? (c) => c.replace('mail_location = maildir:~/Maildir', `mail_location = ${mailLocation}`) : undefined });
  const user = 'ns@example.org';
  if (!mailLocation?.includes('LAYOUT=fs')) {
    writeMaildir(dv.home(user), script);
    writeMaildir(seal.home(user), script);
  }
  const theirs = await runScript(script, { name: 'Dovecot', port, user, password: 'pass' });
  const ours = await runScript(script, { name: 'Sealmail', port: seal.imapPort, user, password: 'pass' });
  const fixed = fixedUidValidities(script);
  // which new mailboxes share a UIDVALIDITY depends on the second they were made in: only that they are new is compared
  const loose = (l: string) => l.replace(/<uidvalidity \d+>/g, '<uidvalidity>');
  const a = normalise(theirs, fixed).map(loose);
  const b = normalise(ours, fixed).map(loose);
  if (process.env.NS_DUMP) { writeFileSync(`/tmp/ns/${scriptFile}.dovecot`, a.join('\n') + '\n'); writeFileSync(`/tmp/ns/${scriptFile}.sealmail`, b.join('\n') + '\n'); }
  const report = compareTranscripts(script, a, b, ['Dovecot', 'Sealmail']);
  if (report) assert.fail(report);
  // the same folders on disk, in the same places, and the same subscriptions files
  if (process.env.NS_DUMP) writeFileSync(`/tmp/ns/${scriptFile}.disk`, diskShape(dv.home(user)).join('\n') + '\n');
  assert.deepEqual(diskShape(seal.home(user)), diskShape(dv.home(user)));
  return { theirs: a, ours: b, dvHome: dv.home(user), sealHome: seal.home(user) };
}

const SLASH = 'namespace inbox {\n  inbox = yes\n  separator = /\n}\n';

test('separator "/" on Maildir++: NAMESPACE, LIST, CREATE/RENAME/DELETE, SELECT, COPY/MOVE, subscriptions as Dovecot', async (t) => {
  await runBoth(t, 'ns-separator-slash.imap', SLASH);
});

const COURIER = 'namespace inbox {\n  inbox = yes\n  prefix = INBOX.\n  separator = .\n}\n';

test('Courier-style prefix "INBOX." as Dovecot: every folder under INBOX., names without it refused', async (t) => {
  await runBoth(t, 'ns-courier-prefix.imap', COURIER);
});

const TWO = `namespace inbox {
  inbox = yes
  separator = /
}
namespace archive {
  prefix = Archive/
  separator = /
  location = maildir:~/Archive
  mailbox 2024 {
    special_use = \\Archive
  }
}
namespace hidden {
  prefix = Hidden/
  separator = /
  hidden = yes
  list = no
  subscriptions = no
  location = maildir:~/Hidden
}
namespace kids {
  prefix = Kids/
  separator = /
  list = children
  location = maildir:~/Kids
}
`;

test('several private namespaces: an inbox one, Archive/ with its own location, a hidden one, list = children, as Dovecot', async (t) => {
  await runBoth(t, 'ns-two-namespaces.imap', TWO);
});

test('LAYOUT=fs with its own separator "/": "." in names, \\Noselect parents, DELETE and RENAME as Dovecot', async (t) => {
  await runBoth(t, 'ns-fs-layout.imap', '', 'maildir:~/Maildir:LAYOUT=fs');
});

test('LAYOUT=fs with separator "/" set in the inbox namespace, the same', async (t) => {
  await runBoth(t, 'ns-fs-layout.imap', SLASH, 'maildir:~/Maildir:LAYOUT=fs');
});
