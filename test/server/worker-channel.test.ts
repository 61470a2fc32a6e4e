/**
 * The master survives a worker whose IPC channel is already closed but
 * whose exit it has not seen yet (a worker dying: 'disconnect' comes before
 * 'exit'): a send to it (an auth-penalty change relayed from another
 * process) is an 'error' event on the ChildProcess, which, unlistened, was
 * an uncaught exception ending the master and every service with it. Now
 * the relay skips it and a direct send is an Error line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PenaltyRelay, ServicePool } from '../../src/server/service-pool.js';
import { ConnectionTable } from '../../src/server/connection-table.js';
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
  const penalties = new PenaltyRelay();
  const table = new ConnectionTable({ protocol: 'imap', login: { service: 'imap-login', cap: 100, warning: '' }, sessions: { service: 'imap', cap: 100, warning: '' }, userip: () => 10 }, new Logger('master'));
  const pool = new ServicePool({ service: 'imap', count: 1, script, args: [], log: new Logger('master'), table, penalties });
  t.after(() => pool.close());
  const { escaped } = await escapes(async () => {
    await pool.start({ files: {}, globs: {} });
    const child = (pool as unknown as { workers: Array<{ child: { connected: boolean } }> }).workers[0].child;
    assert.ok(await until(() => !child.connected, 10_000), 'the stand-in worker closed its channel');
    // another process's penalty change, relayed to every process of every pool
    penalties.relay({ op: 'failed', ip: '192.0.2.7', now: Date.now() }, null as never);
    (pool as unknown as { workers: Array<{ child: { send: (m: unknown) => void } }> }).workers[0].child.send({ t: 'penalty', op: 'failed', ip: '192.0.2.7', now: Date.now() });
    assert.ok(await until(() => lines.some((l) => /^master: Error: service\(imap\): child \d+: /.test(l)), 5000), lines.join('\n'));
  });
  assert.deepEqual(escaped.map(String), []);
});
