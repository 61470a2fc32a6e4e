/**
 * Each process of the root-master tree loads only its role's code (issue:
 * the server's tree at rest took 271–293 MiB RSS against Dovecot's 39–62;
 * every login, auth and LMTP process loaded every protocol's modules through
 * main.ts). Checked by what each process loads (a loader hook inherited
 * through NODE_OPTIONS, one trace file per pid), not by measuring memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSealmail } from '../helpers/sealmail-server.js';
import { distRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

const root = process.getuid?.() === 0;
const trace = join(distRoot, 'test', 'helpers', 'module-trace.js');

/** The role of a process of the tree below `masterPid`, from its command line. */
function role(pid: number, masterPid: number): string | null {
  let status: string;
  let cmd: string;
  try { status = readFileSync(`/proc/${pid}/status`, 'utf8'); cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return null; }
  if (pid === masterPid) return 'master';
  if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== masterPid) return null;
  return cmd.includes('--login-process') ? 'login' : cmd.includes('--auth-process') ? 'auth' : cmd.includes('--mail-process') ? 'mail' : cmd.includes('--lmtp-process') ? 'lmtp' : 'other';
}

test('root master, protocols = imap: login processes load no ManageSieve/POP3/Sieve code, the auth process no protocol or mail store code', { skip: root ? false : 'needs root (the root-master mode)' }, async (t) => {
  const traces = tempDir(t, 'role-trace');
  chmodSync(traces, 0o777); // the login and auth processes write theirs as dovenull / dovecot
  const srv = await startSealmail(t, {
    rewriteConf: (text) => text.replace(/^mail_uid = .*\n/m, '').replace(/^mail_gid = .*\n/m, ''),
    env: { NODE_OPTIONS: `--import ${trace}`, MODULE_TRACE_FILE: join(traces, 'trace.%p') },
  });
  const loaded = new Map<string, string[][]>();
  for (const f of readdirSync(traces)) {
    const r = role(Number(f.slice('trace.'.length)), srv.pid);
    if (!r) continue;
    const mods = readFileSync(join(traces, f), 'utf8').split('\n').filter((u) => u.includes('/dist/src/')).map((u) => u.slice(u.indexOf('/dist/src/') + 10));
    loaded.set(r, [...(loaded.get(r) ?? []), mods]);
  }
  assert.ok(existsSync(join(traces, `trace.${srv.pid}`)), 'the master traced');
  assert.ok((loaded.get('login') ?? []).length >= 1, `login processes traced: ${[...loaded.keys()]}`);
  assert.equal((loaded.get('auth') ?? []).length, 1, 'one auth process traced');
  const none = (mods: string[], dirs: string[]) => mods.filter((m) => dirs.some((d) => m.startsWith(d)));
  for (const mods of loaded.get('login')!) {
    assert.ok(mods.includes('imap/session.js'), 'the login process serves IMAP');
    assert.deepEqual(none(mods, ['managesieve/', 'pop3/', 'sieve/', 'lmtp/']), [], 'login process');
  }
  assert.deepEqual(none(loaded.get('auth')![0], ['imap/', 'managesieve/', 'pop3/', 'sieve/', 'lmtp/', 'mailstore/']), [], 'auth process');
});
