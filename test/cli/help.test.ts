/**
 * sealadm's --help / help / --version, and its answers to an unknown command
 * or global option, compared with the real doveadm (exit code and first
 * stderr line, with sealadm's name).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sealadmJs } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

function sealadm(...args: string[]) {
  return spawnSync(process.execPath, [sealadmJs, ...args], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL', env: { ...process.env, SEALMAIL_CONFIG: '/nonexistent/dovecot.conf' } });
}

const OVERALL = 'usage: sealadm [-Dv] [-f <formatter>] [-c <config>] [-o <key>=<value>] <command> [<args>]';

test('sealadm --help, -c FILE --help and help print the overall usage on stdout, exit 0', () => {
  for (const args of [['--help'], ['-c', '/x.conf', '--help'], ['help']]) {
    const r = sealadm(...args);
    assert.equal(r.status, 0, args.join(' ') + ': ' + r.stderr);
    assert.equal(r.stdout.split('\n')[0], OVERALL);
    assert.match(r.stdout, /^ {2}mailbox status \[-t\] -u <user>/m);
    assert.equal(r.stderr, '');
  }
});

test('sealadm help CMD and CMD --help print that command\'s usage line, exit 0', () => {
  const want = 'usage: sealadm mailbox status [-t] -u <user> <fields> <mailbox mask> [...]\n';
  for (const args of [['help', 'mailbox', 'status'], ['mailbox', 'status', '--help'], ['mailbox', 'status', '-u', 'x', '--help']]) {
    const r = sealadm(...args);
    assert.equal(r.status, 0, args.join(' ') + ': ' + r.stderr);
    assert.equal(r.stdout, want, args.join(' '));
  }
  const u = sealadm('help', 'user');
  assert.equal(u.status, 0);
  assert.match(u.stdout, /^usage: sealadm user \[-a <userdb socket path>\]/);
  // A word that is only a command group lists the group's commands.
  const g = sealadm('help', 'quota');
  assert.equal(g.status, 0);
  assert.match(g.stdout, /^usage: sealadm .* quota <command> \[<args>\]\n/);
  assert.match(g.stdout, /^ {2}recalc \[-u <user>\|-A\]$/m); // named without the group word, as doveadm
  assert.doesNotMatch(g.stdout, /^ {2}user /m);
});

test('sealadm help of an unknown command: usage on stderr, exit 64', () => {
  const r = sealadm('help', 'frobnicate');
  assert.equal(r.status, 64);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.split('\n')[0], OVERALL);
});

test('sealadm --version prints the package version, exit 0', () => {
  const version = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version as string;
  const r = sealadm('--version');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `sealadm (Sealmail) ${version}\n`);
});

test('unknown command and unknown global option: exit code and first stderr line as doveadm', (t) => {
  const doveadm = requireTool(t, 'doveadm');
  if (!doveadm) return;
  for (const args of [['frobnicate'], ['-Z', 'user', 'x'], ['mailbox', 'frobnicate'], ['-c']]) {
    const d: ReturnType<typeof sealadm> = spawnSync(doveadm, args, { argv0: 'doveadm', encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    const s = sealadm(...args);
    const label = args.join(' ');
    assert.equal(s.status, d.status, `${label}: exit code`);
    assert.equal(s.stdout, '', label);
    // Same first line with sealadm's name; sealadm's usage line names its extra global options.
    const first = (out: string) => out.split('\n')[0].replace(/^doveadm/, 'sealadm').replace('usage: doveadm [-Dv] [-f <formatter>]', 'usage: sealadm [-Dv] [-f <formatter>] [-c <config>] [-o <key>=<value>]');
    assert.equal(first(s.stderr), first(d.stderr), label);
  }
});
