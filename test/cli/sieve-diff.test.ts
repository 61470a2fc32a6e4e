/**
 * `sealadm sieve list|get|put|activate|deactivate|delete|rename` against
 * Pigeonhole's `doveadm sieve` commands: twin Dovecot instances, each step
 * run as doveadm on one and as sealadm on the other's tree; stdout, exit
 * code, the last error line and the storage afterwards (scripts, their
 * text, which one is active — read by doveadm on both sides) must match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { sealadmJs } from '../helpers/paths.js';
import { setupDovecot, type Dovecot } from '../helpers/dovecot.js';

const U = 'sieve@example.org';
const CONF = 'plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n';

function state(dv: Dovecot): string {
  const l = dv.doveadm(['-f', 'flow', 'sieve', 'list', '-u', U]);
  const names = l.stdout.split('\n').filter(Boolean).map((x) => x.replace(/^script=(.*?) active=.*$/, '$1')).sort();
  const bodies = names.map((n) => `${n}:${dv.doveadm(['sieve', 'get', '-u', U, n]).stdout}`);
  return `${l.stdout.split('\n').sort().join('\n')}\n${bodies.join('\n')}`;
}

test('sealadm sieve commands = doveadm sieve (Pigeonhole) on the same storage', (t) => {
  const dv = setupDovecot(t, { start: true, extraConf: CONF });
  const sv = setupDovecot(t, { start: true, extraConf: CONF });
  if (!dv || !sv) return;
  t.after(() => { dv.stop(); sv.stop(); });
  const good = 'require "fileinto";\nif header :contains "subject" "x" { fileinto "Junk"; }\n';
  const steps: Array<[string[], string?]> = [
    [['sieve', 'list', '-u', U]],
    [['sieve', 'put', '-u', U, 'main'], good],
    [['sieve', 'put', '-u', U, '-a', 'vacation'], 'keep;\n'],
    [['sieve', 'put', '-u', U, 'broken'], 'if true { frobnicate; }\n'],
    // RFC 5183 environment is in Pigeonhole's default set
    [['sieve', 'put', '-u', U, 'env'], 'require "environment";\nif environment :is "location" "MDA" { keep; }\n'],
    [['sieve', 'list', '-u', U]],
    [['sieve', 'get', '-u', U, 'main']],
    [['sieve', 'get', '-u', U, 'nope']],
    [['sieve', 'activate', '-u', U, 'main']],
    [['sieve', 'activate', '-u', U, 'nope']],
    [['sieve', 'delete', '-u', U, 'main']],
    [['sieve', 'delete', '-u', U, 'vacation']],
    [['sieve', 'rename', '-u', U, 'vacation', 'away']],
    [['sieve', 'rename', '-u', U, 'nope', 'x']],
    [['sieve', 'deactivate', '-u', U]],
    [['sieve', 'list', '-u', U]],
    [['sieve', 'delete', '-u', U, 'main', 'nope']],
    [['sieve', 'activate', '-u', U, 'away']],
    [['sieve', 'delete', '-u', U, '-a', 'away']],
    [['sieve', 'get', '-u', U]],
  ];
  for (const [args, input] of steps) {
    const label = args.join(' ');
    const want: { stdout: string; stderr: string; status: number | null } = dv.doveadm(args, input ?? '');
    const got: SpawnSyncReturns<string> = spawnSync(process.execPath, [sealadmJs, '-c', sv.conf, ...args], { encoding: 'utf8', input: input ?? '', timeout: 60_000 });
    // both list in readdir order, which differs between two directories: compared as sets
    const out = (o: string) => (args[1] === 'list' ? o.split('\n').sort().join('\n') : o);
    assert.equal(out(got.stdout), out(want.stdout), `stdout: ${label}\nsealadm stderr: ${got.stderr}`);
    assert.equal(got.status, want.status, `exit code: ${label}\ndoveadm: ${want.stderr}\nsealadm: ${got.stderr}`);
    const last = (e: string) => e.trim().split('\n').at(-1)!.replace(/^usage: sealadm /, 'doveadm ').replace(/^sealadm\(/, 'doveadm(');
    if (want.status !== 0) assert.equal(last(got.stderr), last(want.stderr), `error line: ${label}`);
    assert.equal(state(sv), state(dv), `storage after: ${label}`);
  }
});
