/**
 * Delivery into ISPmail's Junk before the user ever opened it: Junk is an
 * `auto = subscribe` mailbox, so (as in Dovecot's lmtp) Sieve's fileinto
 * creates and subscribes it instead of falling back to INBOX, without
 * lda_mailbox_autocreate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lmtpSieveConfig } from '../helpers/config-text.js';
import { tempDir } from '../helpers/tmp.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { deliver } from '../../src/lmtp/delivery.js';
import { MessageSpool, type SpooledMessage } from '../../src/lmtp/data-spool.js';

/** A message as LMTP's DATA leaves it for delivery. */
async function spooled(text: string, dir: string): Promise<SpooledMessage> {
  const spool = new MessageSpool(dir, (m) => { throw new Error(m); });
  spool.write(Buffer.from(text));
  return spool.finish();
}

test('fileinto "Junk" creates and subscribes an auto = subscribe Junk', async (t) => {
  const dir = tempDir(t, 'lmtp-auto');
  mkdirSync(join(dir, 'home'));
  writeFileSync(join(dir, 'spam.sieve'), 'require ["fileinto"];\nif header :contains "X-Spam" "Yes" {\n  fileinto "Junk";\n}\n');
  const config = await lmtpSieveConfig(dir, `  sieve_after = ${dir}/spam.sieve
`, `namespace inbox {
  inbox = yes
  separator = .
  mailbox Junk {
    auto = subscribe
    special_use = \\Junk
  }
}
`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());
  const base = { config, auth, user: 'jo@example.org', detail: '', rcpt: 'jo@example.org', mailFrom: 'x@example.net', heloName: 'mx', rip: '127.0.0.1', sessionId: 'T1', single: true };
  assert.deepEqual(await deliver({ ...base, message: await spooled('Subject: buy\nX-Spam: Yes\n\nspam\n', dir) }), { ok: true });
  assert.deepEqual(await deliver({ ...base, message: await spooled('Subject: hi\n\nham\n', dir) }), { ok: true });
  const maildir = join(dir, 'home', 'jo@example.org', 'Maildir');
  const count = (d: string) => ['new', 'cur'].flatMap((s) => (existsSync(join(d, s)) ? readdirSync(join(d, s)) : [])).length;
  assert.equal(count(join(maildir, '.Junk')), 1, 'spam in Junk');
  assert.equal(count(maildir), 1, 'ham in INBOX');
  assert.match(readFileSync(join(maildir, 'subscriptions'), 'utf8'), /^Junk$/m);
});
