/**
 * The master survives a worker whose IPC channel is already closed but
 * whose exit it has not seen yet (a worker dying: 'disconnect' comes before
 * 'exit'): relaying an auth-penalty change to it is an 'error' event on the
 * ChildProcess, which, unlistened, was an uncaught exception ending the
 * master and every service with it. Now it is an Error line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImapWorkerPool } from '../../src/server/imap-workers.js';
import { ConnectionTable } from '../../src/server/connection-table.js';
import { AuthPenalty } from '../../src/auth/penalty.js';
import { Logger, setLogSink } from '../../src/log/logger.js';
import { tempDir } from '../helpers/tmp.js';
import { escapes, until } from '../fuzz/mem-socket.js';

test('a penalty relayed to a worker with a closed channel is logged, not fatal', async (t) => {
  const dir = tempDir(t, 'worker-channel');
  // a stand-in worker: ready, then it closes its channel and lingers before exiting
  const script = join(dir, 'worker.mjs');
  writeFileSync(script, `process.once('message', () => { process.send({ t: 'ready' }, () => { process.disconnect(); setTimeout(() => process.exit(0), 3000); }); });\n`);
  const lines: string[] = [];
  setLogSink((l) => lines.push(l));
  t.after(() => setLogSink(null));
  const pool = new ImapWorkerPool(1, script, [], new Logger('master'), new ConnectionTable({ protocol: 'imap', login: { service: 'imap-login', cap: 100, warning: '' }, sessions: { service: 'imap', cap: 100, warning: '' }, userip: () => 10 }, new Logger('master')));
  t.after(() => pool.close());
  const penalty = new AuthPenalty();
  pool.sharePenalty(penalty);
  const { escaped } = await escapes(async () => {
    await pool.start({ files: {}, globs: {} });
    const child = (pool as unknown as { workers: Array<{ child: { connected: boolean } }> }).workers[0].child;
    assert.ok(await until(() => !child.connected, 10_000), 'the stand-in worker closed its channel');
    penalty.failed('192.0.2.7');
    assert.ok(await until(() => lines.some((l) => /^master: Error: imap worker \d+: /.test(l)), 5000), lines.join('\n'));
  });
  assert.deepEqual(escaped.map(String), []);
});
