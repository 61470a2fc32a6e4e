/**
 * mbsync (Debian's isync) synchronises an account with Sealmail both ways:
 * server mail and folders arrive in the local Maildir, local mail and a
 * local flag change arrive on the server, and a further run finds nothing
 * to do (no file, UID or flag changes anywhere).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { startSealmail } from '../../helpers/sealmail-server.js';
import { findTool, inCI } from '../../helpers/tools.js';

function localFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (!e.name.startsWith('.')) out.push(join(d, e.name).slice(root.length));
    }
  };
  walk(root);
  return out.sort();
}

test('mbsync syncs both ways with Sealmail; a second run has nothing to do', async (t) => {
  const mbsync = findTool('mbsync');
  if (!mbsync) { if (inCI) throw new Error('CI=true and mbsync (isync) is missing'); t.skip('mbsync missing'); return; }
  const srv = await startSealmail(t);
  const imap = new ImapFlow({ host: '127.0.0.1', port: srv.imapsPort, secure: true, auth: { user: 'bob@example.org', pass: 'pass' }, logger: false, tls: { rejectUnauthorized: false } });
  await imap.connect();
  await imap.mailboxCreate('Work');
  await imap.append('INBOX', 'Subject: from server 1\r\n\r\none\r\n');
  await imap.append('INBOX', 'Subject: from server 2\r\n\r\ntwo\r\n', ['\\Flagged']);
  await imap.append('Work', 'Subject: work item\r\n\r\nthree\r\n');
  const local = join(srv.dir, 'local');
  mkdirSync(local);
  const rc = join(srv.dir, 'mbsyncrc');
  writeFileSync(rc, `IMAPAccount sm\nHost 127.0.0.1\nPort ${srv.imapPort}\nUser bob@example.org\nPass pass\nSSLType None\nAuthMechs LOGIN\n\nIMAPStore remote\nAccount sm\n\nMaildirStore local\nPath ${local}/\nInbox ${local}/INBOX\nSubFolders Verbatim\n\nChannel sm\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n`);
  const sync = () => {
    const r = spawnSync(mbsync, ['-c', rc, '-a'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `mbsync failed: ${r.stdout}${r.stderr}`);
  };
  sync();
  const files1 = localFiles(local);
  assert.equal(files1.filter((f) => f.startsWith('/INBOX/')).length, 2);
  assert.equal(files1.filter((f) => f.startsWith('/Work/')).length, 1);
  assert.ok(files1.some((f) => f.startsWith('/INBOX/') && /,F?$|:2,F/.test(f)), 'the server flag arrived');
  // a local message and a local flag change go up
  writeFileSync(join(local, 'INBOX', 'new', '1700000000.1.local'), 'Subject: written locally\n\nfour\n');
  const one = files1.find((f) => f.startsWith('/INBOX/') && !/F/.test(f.split(':2,')[1] ?? ''))!;
  renameSync(join(local, one), join(local, one.replace(/:2,.*$/, '') + ':2,S'));
  await new Promise((r) => setTimeout(r, 1100)); // mbsync skips Maildirs changed within the last second
  sync();
  const lock = await imap.getMailboxLock('INBOX');
  try {
    const subjects: string[] = [];
    for await (const m of imap.fetch('1:*', { envelope: true, flags: true })) subjects.push(`${m.envelope?.subject}|${[...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort().join(',')}`);
    assert.deepEqual(subjects.sort(), ['from server 1|\\Seen', 'from server 2|\\Flagged', 'written locally|']);
  } finally { lock.release(); }
  // nothing left to do: neither side changes
  await new Promise((r) => setTimeout(r, 1100));
  const before = localFiles(local);
  const st = await imap.status('INBOX', { messages: true, uidNext: true, unseen: true });
  sync();
  assert.deepEqual(localFiles(local), before);
  assert.deepEqual(await imap.status('INBOX', { messages: true, uidNext: true, unseen: true }), st);
  await imap.logout();
});
