/**
 * Fuzz of quota-status (Postfix's policy delegation protocol: name=value
 * lines, a request ended by an empty line, several per connection): random
 * bytes and mutated requests — missing or repeated attributes, sizes that
 * are no numbers or overflow, recipients with details, NULs, no `=` —
 * through real QuotaStatusSession objects on a real Maildir with a quota,
 * then over a real unix socket of a real server, which must still answer
 * every protocol afterwards. See driver.ts for what a case asserts.
 */
import { test } from 'node:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { QuotaStatusSession } from '../../src/quota-status/session.js';
import { memTempDir, rnd } from './mem-socket.js';
import { CASES, fuzzSessions, fuzzSockets, type FuzzTarget } from './driver.js';
import { allAnswer, startLiveServer } from './live-server.js';

const ATTRS = [
  () => 'request=smtpd_access_policy', () => 'protocol_state=RCPT', () => 'protocol_name=ESMTP', () => `recipient=u${rnd(2) ? '+d' : ''}@x`,
  () => 'recipient=', () => `size=${[0, 10, 999999999, 4294967296, -5][rnd(5)]}`, () => 'size=abc', () => 'sender=a@b', () => 'client_address=192.0.2.1',
  () => 'noequals', () => '=novalue', () => `recipient=${'u'.repeat(3000)}@x`,
];

test(`quota-status fuzz: ${CASES} cases in memory, then over a real socket`, { timeout: 900_000 }, async (t) => {
  const dir = memTempDir(t, 'fuzz-quota');
  mkdirSync(join(dir, 'home'));
  const config = await parseConfigText(`mail_location = maildir:~/Maildir\nrecipient_delimiter = +\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = home=${dir}/home/%u quota_rule=*:bytes=1000\n}\nplugin {\n  quota = maildir:User quota\n}\n`);
  const auth = new AuthEngine(config, 'lmtp');
  t.after(() => auth.close());

  const request = () => Array.from({ length: 1 + rnd(5) }, () => ATTRS[rnd(ATTRS.length)]()).join('\n') + '\n\n';
  const target: FuzzTarget = {
    start: (sock) => new QuotaStatusSession(sock, config, auth),
    dialogue: () => Buffer.from(Array.from({ length: 1 + rnd(3) }, request).join(''), 'utf8'),
    specials: ['\n', '\n\n', '=', '\0', '\r\n', '+', '@', '\xff'],
    probe: { send: 'request=smtpd_access_policy\nrecipient=u@x\nsize=10\n\n', expect: 'action=OK\n\n' },
  };
  await fuzzSessions(t, target);

  const live = await startLiveServer(t);
  await fuzzSockets(t, target, { path: live.quotaPath });
  await allAnswer(live);
});
