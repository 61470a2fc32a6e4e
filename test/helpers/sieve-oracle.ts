/**
 * Pigeonhole's `sieve-test` as an oracle for Sieve differential tests: a
 * private config (mail user nobody when run as root), a run per script and
 * message, and the action list both engines are compared on (folders with
 * flags, redirect, reject, vacation, discard, implicit keep).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDir } from './tmp.js';
import { requireTool } from './tools.js';
import type { RunResult } from '../../src/sieve/interpreter.js';

export interface SieveOracle {
  dir: string;
  /** Runs sieve-test; `extensions` becomes its -x (e.g. "+editheader"), `location` its -l with -e (actions executed, mail stored). */
  run(script: string, msg: string, opts?: { from?: string; to?: string; extensions?: string; location?: string }): { stdout: string; stderr: string; status: number | null; scriptPath: string };
}

/** A sieve-test set up under a temp dir, or null (test skipped/failed by requireTool) when it is not installed. */
export function sieveOracle(t: TestContext, plugin = ''): SieveOracle | null {
  const bin = requireTool(t, 'sieve-test');
  if (!bin) return null;
  const dir = tempDir(t, 'sieve-oracle');
  chmodSync(dir, 0o755);
  const root = process.getuid?.() === 0;
  const uid = root ? 65534 : process.getuid!();
  const gid = root ? 65534 : process.getgid!();
  mkdirSync(join(dir, 'run'));
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, `mail_uid = ${uid}\nmail_gid = ${gid}\nfirst_valid_uid = 1\nmail_location = maildir:${dir}/Maildir\nbase_dir = ${dir}/run\nlog_path = /dev/stderr\nssl = no\n`
    + `plugin {\n${plugin}}\n`);
  let n = 0;
  return {
    dir,
    run(script, msg, opts = {}) {
      const sd = join(dir, `c${n++}`);
      mkdirSync(sd, { mode: 0o777 });
      chmodSync(sd, 0o777);
      const sp = join(sd, 's.sieve');
      const mp = join(sd, 'm.eml');
      writeFileSync(sp, script, { mode: 0o644 });
      writeFileSync(mp, msg, { mode: 0o644 });
      const args = ['-c', conf, '-f', opts.from ?? 'sender@example.net', '-r', opts.to ?? 'john@example.org'];
      if (opts.extensions) args.push('-x', opts.extensions);
      if (opts.location) args.push('-e', '-l', opts.location);
      const r = spawnSync(bin, [...args, sp, mp], { encoding: 'utf8', timeout: 120_000, cwd: sd });
      return { stdout: r.stdout, stderr: r.stderr, status: r.status, scriptPath: sp };
    },
  };
}

/** sieve-test's compile errors for the script written as s.sieve ("s: line N: error: …."). */
export function oracleCompileErrors(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^s: line \d+: error:/.test(l));
}

/** The performed actions sieve-test lists, normalised and sorted. */
export function oracleActions(out: string): string[] {
  const acts: string[] = [];
  let cur: string | null = null;
  let body: string[] | null = null;
  const flush = () => { if (cur) acts.push(cur); cur = null; };
  for (const line of out.split('\n')) {
    const m = /^ \* (.*)$/.exec(line);
    if (m) {
      flush();
      const a = m[1];
      let x: RegExpExecArray | null;
      if ((x = /^store message in folder: (.*)$/.exec(a))) cur = `store ${x[1]}`;
      else if ((x = /^redirect message to: <(.*)>$/.exec(a))) cur = `redirect ${x[1]}`;
      else if ((x = /^reject message with reason: (.*)$/.exec(a))) cur = `reject ${x[1]}`;
      else if (a.startsWith('send vacation message')) cur = 'vacation';
      else if (a.startsWith('send notification with method')) cur = 'notify';
      else if ((x = /^track( last)? duplicate(?: with handle: (.*))?$/.exec(a))) cur = `track${x[1] ?? ''} duplicate${x[2] !== undefined ? ` with handle: ${x[2]}` : ''}`;
      else if (a === 'discard') cur = 'discard';
      else cur = a;
      continue;
    }
    if (cur?.startsWith('notify')) {
      // the notification's printed fields one after the other; the body between "--" lines
      if (line === '--') { if (body === null) body = []; else { cur += `|body=${body.join('\n')}|`; body = null; } continue; }
      if (body !== null) { body.push(line); continue; }
      const nf = /^\s+=> (\w+)\s*: ?(.*)$/.exec(line);
      const item = /^\s+\+ (.*)$/.exec(line);
      if (nf && !['recipients', 'headers', 'body'].includes(nf[1])) cur += `|${nf[1]}=${nf[2]}`;
      else if (item) cur += `|${item[1]}`;
      continue;
    }
    const f = /^\s+\+ add IMAP flags: (.*)$/.exec(line);
    if (f && cur) cur += ` flags=${f[1].trim().toLowerCase().split(/\s+/).sort().join(',')}`;
    const v = /^\s+=> (seconds|subject) : (.*)$/.exec(line);
    if (v && cur === 'vacation') acts.push(`vacation ${v[1]}=${v[2]}`);
  }
  flush();
  // Pigeonhole lists an executed discard even when another action delivers
  // the message; it has no effect then, and Sealmail does not report it.
  const final = acts.some((a) => /^(store|redirect|reject) /.test(a)) ? acts.filter((a) => a !== 'discard') : acts;
  return [...new Set(final)].sort();
}

/** Sealmail's run result in the same form. */
export function resultActions(r: RunResult): string[] {
  const acts: string[] = [];
  const fl = (f: string[]) => (f.length ? ` flags=${f.map((x) => x.toLowerCase()).sort().join(',')}` : '');
  let delivered = false;
  for (const a of r.actions) {
    if (a.type === 'fileinto') { acts.push(`store ${a.mailbox}${fl(a.flags)}`); delivered = true; }
    if (a.type === 'redirect') { acts.push(`redirect ${a.address}`); delivered = true; }
    if (a.type === 'reject') { acts.push(`reject ${a.reason}`); delivered = true; }
    if (a.type === 'vacation') acts.push('vacation');
  }
  if (r.keep) acts.push(`store INBOX${fl(r.keepFlags)}`);
  else if (!delivered) acts.push('discard');
  // sieve-test prints control characters as '?' (str_sanitize)
  return [...new Set(acts.map((a) => a.replace(/[\x00-\x1f]/g, '?')))].sort();
}
