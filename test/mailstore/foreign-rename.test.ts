/**
 * A message file another process renames (a flag change) while this one
 * reads it: found again under its new name however often it moves, as
 * Dovecot's maildir_file_do retries; only a file gone for good is EXPUNGED.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { MailStoreError } from '../../src/mailstore/errors.js';
import { tempDir } from '../helpers/tmp.js';

/** A Maildir INBOX with one message, synced. */
async function oneMessage(t: TestContext) {
  const home = tempDir(t);
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  await store.ensureRoot();
  const f = await store.open('INBOX');
  await f.append(Buffer.from('Subject: a\n\nx\n'));
  await f.sync();
  return { home, f, m: f.message(1)! };
}

test('a message renamed again between being found and being read is read, not reported expunged', async (t) => {
  const { home, f, m } = await oneMessage(t);
  const cur = join(home, 'Maildir', 'cur');
  // another process sets \Seen; and sets \Flagged too right after this process found the \Seen name
  renameSync(join(home, 'Maildir', m.sub, m.file), join(cur, `${m.base}:2,S`));
  const realStat = fsp.stat;
  let calls = 0;
  fsp.stat = (async (...args: Parameters<typeof realStat>) => {
    if (String(args[0]).includes(m.base) && ++calls === 2) renameSync(join(cur, `${m.base}:2,S`), join(cur, `${m.base}:2,FS`));
    return realStat(...args);
  }) as typeof realStat;
  t.after(() => { fsp.stat = realStat; });
  const st = await f.stat(m);
  assert.ok(st.size > 0);
  assert.equal(f.message(1)!.file, `${m.base}:2,FS`, 'the row follows the file');
  fsp.stat = realStat;
  // gone for good: EXPUNGED
  unlinkSync(join(cur, `${m.base}:2,FS`));
  await assert.rejects(f.stat(f.message(1)!), (e) => e instanceof MailStoreError && e.code === 'EXPUNGED');
});

test('a file found renamed with a keyword letter another process just added shows the keyword, not unknown-N', async (t) => {
  const { home, f, m } = await oneMessage(t);
  // another process: the new keyword's letter first, then the rename that uses it (and again, with \Seen)
  const dir = join(home, 'Maildir');
  await fsp.writeFile(join(dir, 'dovecot-keywords'), '0 $Work\n');
  renameSync(join(dir, m.sub, m.file), join(dir, 'cur', `${m.base}:2,a`));
  renameSync(join(dir, 'cur', `${m.base}:2,a`), join(dir, 'cur', `${m.base}:2,Sa`));
  // this process reads the message before its next sync: the file is found again under the new name
  assert.ok((await f.stat(m)).size > 0);
  assert.deepEqual(f.message(1)!.keywords, ['$Work']);
  await f.sync();
  assert.deepEqual(f.message(1)!.keywords, ['$Work'], 'and the same after the sync');
});
