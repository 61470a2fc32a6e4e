/**
 * The private-Dovecot test helper itself: doveadm works against its config
 * and a started daemon answers IMAP for a user, so a broken helper fails here
 * and not as a confusing differential mismatch elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setupDovecot } from '../helpers/dovecot.js';

test('private Dovecot: doveadm saves and fetches, exec imap answers', (t) => {
  const dv = setupDovecot(t, { start: true });
  if (!dv) return;
  const save = dv.doveadm(['save', '-u', 'alice'], 'Subject: hi\n\nhello\n');
  assert.equal(save.status, 0, save.stderr);
  const f = dv.doveadm(['-f', 'flow', 'fetch', '-u', 'alice', 'uid', 'all']);
  assert.equal(f.stdout, 'uid=1\n');
  const out = dv.imap('alice', 'a SELECT INBOX\r\nb LOGOUT\r\n').toString();
  assert.match(out, /^\* PREAUTH/);
  assert.match(out, /\* 1 EXISTS/);
});
