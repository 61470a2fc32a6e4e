/**
 * Every long-running process a test starts (Sealmail, mariadbd, postgres …)
 * dies with the test, however the test ends:
 * - each child gets its own process group (detached) so that SIGKILL of the
 *   group also takes what it forked (Sealmail's IMAP workers, runuser's postgres);
 * - the owning test's after hook kills the group and waits until no member is
 *   left, before the test's temp dirs go (tmp.ts reaps first);
 * - when the test file process itself is stopped (node --test's
 *   --test-timeout sends it SIGTERM and runs no after hooks; .ci/run's overall
 *   `timeout`), a signal/exit handler kills every group synchronously and runs
 *   the registered stops of daemons that left our groups (Dovecot, Postfix).
 * A child that keeps one of our pipes also keeps the test process alive: that
 * was the minutes-long hang of an lmtp-diff run whose server start failed.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

const live = new Set<ChildProcess>();
const byTest = new WeakMap<object, Set<ChildProcess>>();
const aborts = new Set<() => void>();

function killGroup(child: ChildProcess): void {
  if (!child.pid) return;
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* group already gone */ }
  try { child.kill('SIGKILL'); } catch { /* gone */ }
}

/** Live (non-zombie) pids of a process group, from /proc. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // fields after "(comm) ": state ppid pgrp …
      const f = readFileSync(`/proc/${e}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      if (Number(f[2]) === pgid && f[0] !== 'Z') out.push(Number(e));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

/** True while any process of the child's group (the child or what it forked) still runs. */
function groupAlive(child: ChildProcess): boolean {
  if (!child.pid) return false;
  try { process.kill(-child.pid, 0); } catch { return false; }
  return groupMembers(child.pid).length > 0;
}

let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const abortAll = (): void => {
    for (const c of live) killGroup(c);
    live.clear();
    for (const stop of aborts) { try { stop(); } catch { /* best effort while exiting */ } }
    aborts.clear();
  };
  process.on('exit', abortAll);
  for (const [sig, n] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]] as const) {
    process.on(sig, () => { abortAll(); process.exit(128 + n); });
  }
}

/**
 * A synchronous clean-up (killDaemon of a detached daemon, removing a temp
 * dir) run when the test process ends or is stopped before its after hooks
 * ran; after the owned children were killed. Returns the unregister function.
 */
export function onAbort(stop: () => void): () => void {
  installHandlers();
  aborts.add(stop);
  return () => aborts.delete(stop);
}

/**
 * SIGKILL a daemon that detached itself (Dovecot's and Postfix's masters call
 * setsid(): their children share the master's group), found by its pid file.
 * For onAbort: the graceful stop (doveadm stop, postfix stop) stays the normal path.
 */
export function killDaemon(pidFile: string): void {
  let pid: number;
  try { pid = Number(readFileSync(pidFile, 'utf8').trim()); } catch { return; }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader, or gone */ }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}

/**
 * The pid a daemon's master wrote: its starting process may return before the
 * forked master has written the file, so it is waited for (10 s at most).
 */
function daemonPid(pidFile: string): number {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + 10_000;
  for (;;) {
    let text = '';
    try { text = readFileSync(pidFile, 'utf8'); } catch { /* not written yet */ }
    const pid = Number(text.trim());
    if (text.endsWith('\n') && Number.isInteger(pid) && pid > 1) return pid;
    if (Date.now() > end) throw new Error(`no daemon pid in ${pidFile} after 10 s`);
    Atomics.wait(nap, 0, 0, 20); // a synchronous wait: the callers start the daemon with spawnSync
  }
}

/**
 * A daemon that detached itself (started by spawnSync and setsid()), owned by
 * the test from now on: its pid is read here, once, so the kill after the
 * test does not depend on its pid file or config still existing (a temp dir
 * removed by an earlier after hook left `doveadm stop` nothing to read, and
 * the daemon ran on). SIGKILL of its whole group after `t` or when the test
 * process ends; call it right after the daemon started.
 */
export function ownDaemon(t: TestContext, pidFile: string): void {
  const pid = daemonPid(pidFile);
  const kill = () => {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader, or gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  };
  const unregister = onAbort(kill);
  t.after(() => { kill(); unregister(); });
}

/**
 * spawn() in a process group of its own, killed (SIGKILL, whole group) after
 * the test `t`, or when the test process ends. Register it before any await.
 */
export function spawnOwned(t: TestContext | null, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  installHandlers();
  const child = spawn(cmd, args, { ...opts, detached: true });
  live.add(child);
  child.once('exit', () => { if (!groupAlive(child)) live.delete(child); }); // restarted servers (lmtp-kill.ts) do not pile up
  child.on('error', () => undefined); // a missing binary shows as exit code -2 / the caller's wait failing
  if (t) {
    let mine = byTest.get(t);
    if (!mine) {
      mine = new Set();
      byTest.set(t, mine);
      t.after(() => reap(t));
    }
    mine.add(child);
  }
  return child;
}

/** Kill a child's whole group and wait (bounded) until none of it is left. */
export async function killOwned(child: ChildProcess): Promise<void> {
  killGroup(child);
  const exited = child.exitCode !== null || child.signalCode !== null || !child.pid
    ? Promise.resolve()
    : new Promise<void>((r) => child.once('exit', () => r()));
  const end = Date.now() + 10_000;
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  // forked members (workers) are reparented and reaped by init: wait until the group is empty
  while (groupAlive(child) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  live.delete(child);
}

/** Kill every child the test started (spawnOwned with t); tmp.ts calls this before removing dirs. */
export async function reap(t: TestContext): Promise<void> {
  const mine = byTest.get(t);
  if (!mine) return;
  byTest.delete(t);
  await Promise.all([...mine].map(killOwned));
}
