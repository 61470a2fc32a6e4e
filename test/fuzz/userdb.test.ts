/**
 * Fuzz of auth-userdb (Dovecot's auth master protocol, as dovecot-lda and
 * doveadm speak it): VERSION, USER, PASS and LIST with broken ids, missing
 * service, escaped arguments, over-long lines — random and mutated — through
 * real AuthUserdbSession objects, then over a real unix socket of a real
 * server, which must still answer every protocol afterwards. See driver.ts
 * for what a case asserts.
 */
import { test } from 'node:test';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { AuthUserdbSession } from '../../src/authsock/userdb.js';
import { Logger } from '../../src/log/logger.js';
import { rnd } from './mem-socket.js';
import { CASES, fuzzSessions, fuzzSockets, type FuzzTarget } from './driver.js';
import { allAnswer, startLiveServer } from './live-server.js';

const STEPS = [
  () => `USER\t${rnd(5)}\tu@x\tservice=lda`, () => `USER\t${rnd(5)}\tu${rnd(2) ? '+d' : ''}@x\tservice=doveadm\trip=127.0.0.1\tlip=::1\tsession=abc`,
  () => `PASS\t${rnd(5)}\tu@x\tservice=doveadm`, () => 'LIST\t7', () => 'LIST\t8\tuser=*@x', () => 'USER\tx\tu@x\tservice=lda',
  () => 'USER\t1\tu@x', () => 'USER\t1', () => `USER\t1\t${'u'.repeat(2000)}\tservice=lda`, () => 'USER\t1\tu\x01t@x\tservice=lda',
  () => 'VERSION\t1\t1', () => 'VERSION\t2\t0', () => 'CPID\t1', () => 'BOGUS',
];

test(`auth-userdb fuzz: ${CASES} cases in memory, then over a real socket`, { timeout: 900_000 }, async (t) => {
  const config = await parseConfigText('passdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=1 gid=1 home=/nonexistent/%u\n}\n');
  const engine = new AuthEngine(config, 'lda');
  t.after(() => engine.close());
  const log = new Logger('auth');

  const target: FuzzTarget = {
    start: (sock) => new AuthUserdbSession(sock, engine, log),
    dialogue: () => {
      const lines = rnd(4) ? ['VERSION\t1\t1'] : [];
      for (let i = 0, n = 1 + rnd(4); i < n; i++) lines.push(STEPS[rnd(STEPS.length)]());
      return Buffer.from(lines.join('\n') + '\n', 'utf8');
    },
    specials: ['\t', '\n', '\x01', '\x01r', '=', '\0', 'service=', '\r'],
    probe: { send: 'VERSION\t1\t1\nUSER\t1\tu@x\tservice=lda\n', expect: 'USER\t1\tu@x' },
  };
  await fuzzSessions(t, target);

  const live = await startLiveServer(t);
  await fuzzSockets(t, target, { path: live.userdbPath });
  await allAnswer(live);
});
