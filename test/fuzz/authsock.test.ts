/**
 * Fuzz of the Postfix auth socket (Dovecot's auth client protocol, as
 * `smtpd_sasl_type = dovecot` speaks it): VERSION/CPID handshakes, AUTH
 * PLAIN/LOGIN with and without initial responses, CONT, CANCEL, tab- and
 * \x01-escaped parameters, bad base64, duplicate ids, over-long lines —
 * random and mutated — through real AuthClientSession objects, then over a
 * real unix socket of a real server, which must still answer every protocol
 * afterwards. See driver.ts for what a case asserts.
 */
import { test } from 'node:test';
import { parseConfigText } from '../helpers/config-text.js';
import { AuthEngine } from '../../src/auth/engine.js';
import { AuthPenalty } from '../../src/auth/penalty.js';
import { AuthClientSession } from '../../src/authsock/server.js';
import { Logger } from '../../src/log/logger.js';
import { rnd } from './mem-socket.js';
import { CASES, fuzzSessions, fuzzSockets, type FuzzTarget } from './driver.js';
import { allAnswer, startLiveServer } from './live-server.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const id = () => String(rnd(4));
const STEPS = [
  () => `AUTH\t${id()}\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.${rnd(3)}\tsecured\tresp=${b64(`\0u@x\0${rnd(2) ? 'pass' : 'wrong'}`)}`,
  () => `AUTH\t${id()}\tPLAIN\tservice=smtp\tresp=`, () => `AUTH\t${id()}\tPLAIN\tservice=smtp\tresp==`,
  () => `AUTH\t${id()}\tLOGIN\tservice=smtp\tno-penalty`, () => `CONT\t${id()}\t${b64('u@x')}`, () => `CONT\t${id()}\t${b64('pass')}`,
  () => `AUTH\t${id()}\tPLAIN\tservice=smtp\tresp=!!bad`, () => `AUTH\t${id()}\tCRAM-MD5\tservice=smtp`, () => `AUTH\t${id()}\tPLAIN`,
  () => `CANCEL\t${id()}`, () => `CONT\t${id()}\t*`, () => 'CPID\t2', () => 'VERSION\t2\t0', () => 'x'.repeat(9000),
  () => `AUTH\t${id()}\tPLAIN\tservice=smtp\tresp=${b64(`u@x\0u@x\0pass`)}\tuser=\x01t\x01n\x011\x01`,
];

test(`auth client socket fuzz: ${CASES} cases in memory, then over a real socket`, { timeout: 900_000 }, async (t) => {
  const config = await parseConfigText('auth_mechanisms = plain login\nauth_failure_delay = 0\npassdb {\n  driver = static\n  args = password=pass\n}\nuserdb {\n  driver = static\n  args = uid=1 gid=1 home=/nonexistent/%u\n}\n');
  const engine = new AuthEngine(config, 'smtp');
  t.after(() => engine.close());
  const log = new Logger('auth');

  const target: FuzzTarget = {
    // a fresh penalty per session: one case's failures must not slow the next one's attempts
    start: (sock) => new AuthClientSession(sock, config, engine, new AuthPenalty(), log),
    dialogue: () => {
      const lines = rnd(4) ? ['VERSION\t1\t2', `CPID\t${rnd(99999)}`] : [];
      for (let i = 0, n = 1 + rnd(4); i < n; i++) lines.push(STEPS[rnd(STEPS.length)]());
      return Buffer.from(lines.join('\n') + '\n', 'utf8');
    },
    specials: ['\t', '\n', '\x01', '\x01t', '=', '\0', 'resp=', '\r', '\xff'],
    probe: { send: `VERSION\t1\t2\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\tresp=${b64('\0u@x\0pass')}\n`, expect: 'OK\t1\tuser=u@x' },
  };
  await fuzzSessions(t, target);

  const live = await startLiveServer(t);
  await fuzzSockets(t, target, { path: live.authPath });
  await allAnswer(live);
});
