/**
 * Sieve's fileinto names a mailbox as the user's namespaces name it, as
 * Pigeonhole does: with `separator = /`, fileinto "Lists/dev" is the
 * Maildir++ folder .Lists.dev, fileinto "Archive/2024" goes to the
 * Archive/ namespace's own Maildir, and a name the namespace refuses
 * ("a.b": '.' is the layout's separator) keeps the message in INBOX.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lmtpSieveConfig } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { deliver } from '../../src/lmtp/delivery.js';
import { MessageSpool, type SpooledMessage } from '../../src/lmtp/data-spool.js';

async function spooled(text: string, dir: string): Promise<SpooledMessage> {
  const spool = new MessageSpool(dir, (m) => { throw new Error(m); });
  spool.write(Buffer.from(text));
  return spool.finish();
}

test('fileinto with the namespace separator "/": Maildir++ folders, another namespace, a refused name kept in INBOX', async (t) => {
  const dir = tempDir(t, 'lmtp-ns');
  mkdirSync(join(dir, 'home'));
  writeFileSync(join(dir, 'rules.sieve'), `require ["fileinto", "mailbox"];
if header :is "X-To" "list" { fileinto :create "Lists/dev"; stop; }
if header :is "X-To" "archive" { fileinto :create "Archive/2024"; stop; }
if header :is "X-To" "dotted" { fileinto :create "a.b"; stop; }
`);
  const config = await lmtpSieveConfig(dir, `  sieve_after = ${dir}/rules.sieve
`, `namespace inbox {
  inbox = yes
  separator = /
}
namespace archive {
  prefix = Archive/
  separator = /
  location = maildir:~/Archive
}
`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());
  const base = { config, auth, user: 'jo@example.org', detail: '', rcpt: 'jo@example.org', mailFrom: 'x@example.net', heloName: 'mx', rip: '127.0.0.1', sessionId: 'T1', single: true };
  for (const to of ['list', 'archive', 'dotted']) {
    assert.deepEqual(await deliver({ ...base, message: await spooled(`Subject: ${to}\nX-To: ${to}\n\nbody\n`, dir) }), { ok: true });
  }
  const home = join(dir, 'home', 'jo@example.org');
  const count = (d: string) => ['new', 'cur'].flatMap((s) => (existsSync(join(d, s)) ? readdirSync(join(d, s)) : [])).length;
  assert.equal(count(join(home, 'Maildir', '.Lists.dev')), 1, 'Lists/dev is the Maildir++ folder .Lists.dev');
  assert.equal(count(join(home, 'Archive', '.2024')), 1, 'Archive/2024 is in the Archive namespace\'s own Maildir');
  assert.equal(count(join(home, 'Maildir')), 1, 'a.b is refused: kept in INBOX');
  assert.ok(!existsSync(join(home, 'Maildir', '.a.b')), 'no folder a/b made from a.b');
});
