/**
 * The quota-status policy service Postfix queries (check_policy_service):
 * several requests on one connection, DUNNO while the message fits the
 * user's quota_rule, Dovecot's "552 5.2.2 Mailbox is full" when used + size
 * would exceed it, the recipient's detail and case ignored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { mailIds } from '../helpers/dovecot.js';

test('quota-status answers Postfix policy requests from quota_rule and maildirsize', async (t) => {
  const { uid, gid } = mailIds();
  let sock = '';
  const srv = await startSealmail(t, {
    extraConf: 'recipient_delimiter = +\nplugin {\n  quota = maildir:User quota\n  quota_grace = 0\n  quota_status_success = DUNNO\n  quota_status_nouser = DUNNO\n  quota_status_overquota = "552 5.2.2 Mailbox is full"\n}\nservice quota-status {\n  unix_listener SOCK {\n    mode = 0666\n  }\n}\nuserdb {\n  driver = static\n  args = uid=UID gid=GID home=HOME/%u quota_rule=*:bytes=1000\n}\n',
    beforeStart: (dir) => { sock = join(dir, 'quota-status'); },
    rewriteConf: (text, dir) => text.replace('SOCK', join(dir, 'quota-status')).replace('UID', String(uid)).replace('GID', String(gid)).replace('HOME', join(dir, 'home'))
      .replace(/userdb \{\n  driver = static\n  args = uid=\d+ gid=\d+ home=[^\n]*\n\}\n/, ''),
  });
  const c = connect(sock);
  let out = '';
  c.on('data', (d) => { out += d; });
  const ask = async (rcpt: string, size: number) => {
    const before = out.length;
    c.write(`request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=${rcpt}\nsize=${size}\n\n`);
    for (let i = 0; i < 200 && !out.slice(before).includes('\n\n'); i++) await new Promise((r) => setTimeout(r, 10));
    return out.slice(before);
  };
  assert.equal(await ask('ann@example.org', 500), 'action=DUNNO\n\n');
  assert.equal(await ask('Ann+lists@Example.org', 5000), 'action=552 5.2.2 Mailbox is full\n\n');
  assert.equal(await ask('ann@example.org', 0), 'action=DUNNO\n\n');
  c.destroy();
  void srv;
});
