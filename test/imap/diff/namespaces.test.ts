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
import { spawnSync } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { setupDovecot } from '../../helpers/dovecot.js';
import { sealadmJs } from '../../helpers/paths.js';
import { lockstep } from '../../helpers/imap-lockstep.js';
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

/**
 * One Maildir, both servers: doveadm makes folders (with mail and a
 * subscription) that sealadm and Sealmail's IMAP list and open; sealadm
 * makes folders Dovecot then saves into and lists. `mailbox list` (also -s)
 * and `mailbox status` of sealadm and doveadm agree at each step.
 */
async function shared(t: import('node:test').TestContext, conf: string, mailLocation?: string): Promise<void> {
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: conf, ...(mailLocation ? { mailLocation } : {}) });
  if (!dv) return;
  const U = 'both@example.org';
  const ok = (r: { status: number | null; stderr: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  const sealadm = (args: string[]) => spawnSync(process.execPath, [sealadmJs, '-c', dv.conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  const sorted = (s: string) => s.split('\n').filter(Boolean).sort().join('\n');
  const agree = (step: string, boxes: string[]) => {
    for (const args of [['mailbox', 'list', '-u', U], ['mailbox', 'list', '-s', '-u', U], ['mailbox', 'status', '-u', U, 'messages', ...boxes], ['mailbox', 'list', '-u', U, 'Archive/%']]) {
      const want = dv.doveadm(args);
      const got = sealadm(args);
      assert.equal(sorted(got.stdout), sorted(want.stdout), `${step}: ${args.join(' ')} differs (sealadm stderr: ${got.stderr})`);
    }
  };
  for (const box of ['Dv/One', 'Dv/a.b', 'Archive/Dv']) {
    const r = dv.doveadm(['mailbox', 'create', '-u', U, box]);
    // "a.b" is a name only LAYOUT=fs can hold
    if (box === 'Dv/a.b' && !mailLocation?.includes('LAYOUT=fs')) { assert.notEqual(r.status, 0); continue; }
    ok(r, `doveadm mailbox create ${box}`);
  }
  for (const box of ['Dv/One', 'Archive/Dv']) ok(dv.doveadm(['save', '-u', U, '-m', box], `Subject: ${box}\n\nby Dovecot\n`), `doveadm save ${box}`);
  ok(dv.doveadm(['mailbox', 'subscribe', '-u', U, 'Dv/One', 'Archive/Dv']), 'doveadm mailbox subscribe');
  agree('after Dovecot made folders', ['Dv/One', 'Archive/Dv']);
  // Sealmail's IMAP on the same home opens what Dovecot made, and makes folders of its own
  const seal = await startSealmail(t, { extraConf: conf, rewriteConf: (c) => c.replace(/home=\S+\/home\/%u/, `home=${dv.home('%u')}`).replace('mail_location = maildir:~/Maildir', `mail_location = ${mailLocation ?? `maildir:${dv.home('%u')}/Maildir`}`) });
  const out = await lockstep(seal.imapPort, ['s1 SELECT Dv/One', 's2 SELECT Archive/Dv', 's3 LSUB "" "*"', 's4 CREATE Archive/Seal/Deep', 's5 SUBSCRIBE Archive/Seal/Deep'], U);
  assert.equal(out.match(/\* 1 EXISTS/g)?.length, 2, out);
  assert.match(out, /\* LSUB \(\) "\/" Dv\/One\r\n/);
  assert.match(out, /s5 OK/);
  ok(sealadm(['mailbox', 'create', '-u', U, 'Seal/One']), 'sealadm mailbox create Seal/One');
  for (const box of ['Seal/One', 'Archive/Seal/Deep']) ok(dv.doveadm(['save', '-u', U, '-m', box], `Subject: ${box}\n\nsaved by Dovecot\n`), `doveadm save into ${box}`);
  agree('after Sealmail made folders', ['Dv/One', 'Archive/Dv', 'Seal/One', 'Archive/Seal/Deep']);
}

const SHARED = `namespace inbox {
  inbox = yes
  separator = /
}
namespace archive {
  prefix = Archive/
  separator = /
  location = maildir:~/Archive
}
`;

test('one Maildir++ tree, both servers (separator "/", an Archive/ namespace): each lists and opens what the other made', (t) => shared(t, SHARED));

test('one LAYOUT=fs tree, both servers: each lists and opens what the other made, "a.b" included', (t) => shared(t, SHARED.replace('maildir:~/Archive', 'maildir:~/Archive:LAYOUT=fs'), 'maildir:%h/Maildir:LAYOUT=fs'));

/** Everything the server says to a LOGIN until it closes the connection (bounded). */
function loginUntilClosed(port: number, user: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = netConnect(port, '127.0.0.1');
    let buf = '';
    let sent = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connection not closed; got ${JSON.stringify(buf)}`)); }, 30_000);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (!sent && buf.includes('\r\n')) { sent = true; sock.write(`a LOGIN ${user} pass\r\n`); }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => { clearTimeout(timer); resolve(buf); });
  });
}

test('a namespace set Dovecot refuses (two inbox = yes): the session ends with Dovecot\'s BYE', async (t) => {
  const conf = 'namespace a {\n  inbox = yes\n}\nnamespace b {\n  inbox = yes\n  prefix = B.\n}\n';
  const port = await freePort();
  const dv = setupDovecot(t, { start: true, protocols: 'imap', extraConf: `disable_plaintext_auth = no\nservice imap-login {\n  inet_listener imap {\n    port = ${port}\n  }\n}\n${conf}` });
  if (!dv) return;
  const seal = await startSealmail(t, { extraConf: conf });
  // only LOGIN is sent: the server ends the session, and a command written after that would only
  // race its close (an RST can discard the BYE before it is read)
  const theirs = await loginUntilClosed(port, 'bad@example.org');
  const ours = await loginUntilClosed(seal.imapPort, 'bad@example.org');
  // Dovecot answers LOGIN OK before the mail user fails, Sealmail opens the store before its OK: both end the session the same way
  for (const out of [theirs, ours]) {
    assert.match(out, /\* BYE Internal error occurred\. Refer to server log for more information\.\r\n$/, out);
  }
});
