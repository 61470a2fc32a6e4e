/**
 * For every Dovecot-written fixture case, Sealmail must report exactly the
 * view Dovecot 2.3.19 reported (views.json): LIST (extended and plain), LSUB,
 * STATUS/EXAMINE counters, FLAGS, and per message UID, flags, keywords,
 * RFC822.SIZE and INTERNALDATE. Opening read-only must not move new/ files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailStore } from '../../src/mailstore/store.js';
import { DEFAULT_NAMESPACE } from '../../src/mailstore/namespaces.js';
import { tempDir } from '../helpers/tmp.js';
import { fixtureViews, imapDate, ISPMAIL_SPECIAL_USE, materialiseCase } from './maildir-fixture.js';

const LOCATIONS: Record<string, string> = {
  'maildirpp-alice': 'maildir:~/Maildir',
  'layout-fs-bob': 'maildir:~/Maildir:LAYOUT=fs',
  'utf8-carol': 'maildir:~/Maildir:UTF-8',
  'external-changes-dave': 'maildir:~/Maildir',
};

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const quote = (n: string) => (/[ "\\]/.test(n) ? `"${n}"` : n);

for (const [name, view] of Object.entries(fixtureViews())) {
  test(`fixture ${name}: Sealmail reports Dovecot's view`, async (t) => {
    const home = materialiseCase(name, tempDir(t));
    const warnings: string[] = [];
    // the fixtures were made with ISPmail's namespace: separator "." (LAYOUT=fs too)
    const store = new MailStore({ mailLocation: LOCATIONS[name], home, namespaces: [{ ...DEFAULT_NAMESPACE, separator: '.' }], specialUse: ISPMAIL_SPECIAL_USE, warn: (m) => warnings.push(m) });
    const plain = (l: { name: string; flags: string[] }[]) => l.map(({ name, flags }) => ({ name, flags })).sort(byName);
    assert.deepEqual(plain(await store.list()), [...view.list_extended].sort(byName), 'LIST RETURN (SPECIAL-USE SUBSCRIBED CHILDREN)');
    assert.deepEqual(plain(await store.list(true)), [...view.list_plain].sort(byName), 'plain LIST');
    assert.deepEqual((await store.lsub()).map((e) => `* LSUB (${e.flags.join(' ')}) "." ${quote(e.name)}`), view.lsub, 'LSUB');

    for (const mb of view.mailboxes) {
      const f = await store.open(mb.name);
      await f.sync();
      assert.equal(f.uidValidity, mb.uidvalidity, `${mb.name} UIDVALIDITY`);
      assert.equal(f.uidNext, mb.uidnext, `${mb.name} UIDNEXT`);
      assert.equal(f.messages.length, mb.messages, `${mb.name} MESSAGES`);
      assert.equal(f.messages.filter((m) => !m.flags.has('\\Seen')).length, mb.unseen, `${mb.name} UNSEEN`);
      assert.equal(`* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft${f.keywordOrder.map((k) => ' ' + k).join('')})`, mb.flags_response, `${mb.name} FLAGS`);
      const got = [];
      for (const m of f.messages) {
        const order = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
        got.push({
          uid: m.uid, flags: order.filter((x) => m.flags.has(x as never)), keywords: m.keywords,
          rfc822_size: await f.virtualSize(m), internaldate: imapDate((await f.stat(m)).mtime),
        });
      }
      assert.deepEqual(got, mb.msgs, `${mb.name} messages`);
      const st = await store.status(mb.name);
      assert.deepEqual([st.messages, st.uidnext, st.uidvalidity, st.unseen], [mb.messages, mb.uidnext, mb.uidvalidity, mb.unseen]);
    }
    // EXAMINE/STATUS never move new/ → cur/
    const inboxNew = join(home, 'Maildir', 'new');
    if (name === 'maildirpp-alice') assert.equal(readdirSync(inboxNew).length, 1);
  });
}

test('external-changes-dave: unknown keyword letter is written back as unknown-25, uidlist keeps UIDs', async (t) => {
  const home = materialiseCase('external-changes-dave', tempDir(t));
  // drop Dovecot's own unknown-25 entry: we must recreate it from the letter
  writeFileSync(join(home, 'Maildir', 'dovecot-keywords'), '0 Work\n');
  const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
  const f = await store.open('INBOX');
  await f.sync({ moveNew: true });
  assert.equal(f.message(6)?.keywords[0], 'unknown-25');
  assert.match(readFileSync(join(home, 'Maildir', 'dovecot-keywords'), 'utf8'), /^25 unknown-25$/m);
  // UID 10 moved to cur/ with an empty info part, same UID
  const m10 = f.messages.find((m) => m.uid === 10);
  assert.ok(m10);
  await f.sync();
  assert.equal(f.message(10)?.sub, 'cur');
  assert.ok(existsSync(join(home, 'Maildir', 'cur', '1700000005.P1.locktest:2,')));
  assert.deepEqual(f.messages.map((m) => m.uid), [1, 2, 5, 6, 7, 8, 9, 10]);
  assert.equal(existsSync(join(home, 'Maildir', 'dovecot-uidlist.lock')), false);
});
