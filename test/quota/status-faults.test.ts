/**
 * Found by the quota-status fuzz (test/fuzz/quota-status.test.ts): a
 * recipient so long that the user's home path exceeds the file system's
 * name limit made the quota check throw (ENAMETOOLONG reading maildirsize),
 * and the connection was dropped without an answer. Now the answer is
 * quota-status.c's for a quota that cannot be computed,
 * `DEFER_IF_PERMIT Internal quota calculation error`, with an Error line,
 * and the same connection answers the next request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { converse } from '../fuzz/live-server.js';

test('a quota that cannot be read is a DEFER_IF_PERMIT, and the connection goes on', async (t) => {
  const srv = await startSealmail(t, {
    extraConf: 'plugin {\n  quota = maildir:User quota\n}\nservice quota-status {\n  unix_listener quota-status {\n    mode = 0666\n  }\n}\n',
  });
  const long = 'u'.repeat(3000) + '@example.org';
  const got = await converse({ path: join(srv.dir, 'base', 'quota-status') }, [
    [`request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=${long}\nsize=10\n\n`, '\n\n'],
    ['request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=ann@example.org\nsize=10\n\n', 'action=OK\n\n'],
  ]);
  assert.equal(got, 'action=DEFER_IF_PERMIT Internal quota calculation error\n\naction=OK\n\n');
  assert.match(srv.output(), /quota-status: Error: quota check of u{256}\.\.\. failed: reading maildirsize[: ]/);
});
