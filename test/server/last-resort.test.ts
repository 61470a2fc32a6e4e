/**
 * The last-resort handler of the master and the IMAP workers: an exception
 * that escaped every session's fault boundary is logged as Dovecot's
 * i_panic logs one (`Panic:` and a `Raw backtrace:` line) and the process
 * exits with 89, so its supervisor restarts it; it does not carry on.
 * Run in a real child process, since the handler ends the process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const faults = new URL('../../src/server/faults.js', import.meta.url).href;
const logger = new URL('../../src/log/logger.js', import.meta.url).href;

function run(fault: string): Promise<{ code: number | null; err: string; out: string }> {
  const script = `
    const { installLastResort } = await import(${JSON.stringify(faults)});
    const { Logger } = await import(${JSON.stringify(logger)});
    installLastResort(new Logger('master'));
    setTimeout(() => process.stdout.write('carried on\\n'), 300);
    ${fault}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.on('data', (d) => (out += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((r) => child.on('close', (code) => { clearTimeout(kill); r({ code, err, out }); }));
}

test('an uncaught exception: Panic line, backtrace, exit 89', async () => {
  const r = await run(`function explode() { throw new Error('boom'); } setTimeout(explode, 10);`);
  assert.equal(r.code, 89);
  assert.equal(r.out, '', 'the process did not carry on');
  assert.match(r.err, /^master: Panic: Uncaught exception: boom$/m);
  assert.match(r.err, /^master: Error: Raw backtrace: \S*explode .* -> listOnTimeout /m);
});

test('an unhandled rejection: Panic line, backtrace, exit 89', async () => {
  const r = await run(`async function reject() { throw new Error('nope'); } void reject();`);
  assert.equal(r.code, 89);
  assert.equal(r.out, '');
  assert.match(r.err, /^master: Panic: Unhandled promise rejection: nope$/m);
  assert.match(r.err, /^master: Error: Raw backtrace: reject /m);
});

test('something thrown that is not an Error is still a Panic', async () => {
  const r = await run(`setTimeout(() => { throw 'a string'; }, 10);`);
  assert.equal(r.code, 89);
  assert.match(r.err, /^master: Panic: Uncaught exception: a string$/m);
});
