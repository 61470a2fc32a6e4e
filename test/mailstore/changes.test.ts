/**
 * IDLE notifications: a change by another process (a plain rename/unlink, as
 * Dovecot or a foreign MDA would do) and by this process both reach a
 * watchFolder subscriber, which then sees the change after a sync.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { watchFolder } from '../../src/mailstore/changes.js';
import { tempDir } from '../helpers/tmp.js';

function nextEvent(dir: string): { promise: Promise<void>; close: () => void } {
  let close = () => {};
  const promise = new Promise<void>((resolve) => {
    const sub = watchFolder(dir, () => { sub.close(); resolve(); });
    close = () => sub.close();
  });
  return { promise, close };
}

test('watchFolder reports foreign deliveries, our own writes and expunges', async (t) => {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const inbox = await store.open('INBOX');
  await inbox.sync();
  const dir = store.dirOf('INBOX');

  // foreign MDA: tmp/ + rename into new/
  let ev = nextEvent(dir);
  writeFileSync(join(dir, 'tmp', '1700000000.P1.mda'), 'Subject: x\n\nbody\n');
  renameSync(join(dir, 'tmp', '1700000000.P1.mda'), join(dir, 'new', '1700000000.P1.mda'));
  await ev.promise;
  await inbox.sync();
  assert.deepEqual(inbox.messages.map((m) => m.uid), [1]);

  // our own flag change through the in-process bus (and inotify)
  ev = nextEvent(dir);
  await inbox.setFlags(inbox.message(1)!, ['\\Seen'], []);
  await ev.promise;

  ev = nextEvent(dir);
  await inbox.expunge([inbox.message(1)!]);
  await ev.promise;
  await inbox.sync();
  assert.equal(inbox.messages.length, 0);
});
