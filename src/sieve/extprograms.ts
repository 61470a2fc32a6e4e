/**
 * Running the program of a Sieve `pipe` action (vnd.dovecot.pipe), as
 * Pigeonhole's sieve_extprograms plugin does it
 * (sieve-extprograms-common.c, lib-program-client's local client): the
 * program is looked up in `sieve_pipe_bin_dir` only (its name never holds a
 * '/'; it must be a regular file that is not world-writable), started with
 * the script's arguments, a clean environment holding only USER, HOME and
 * HOST, and / as its working directory (as Dovecot's imap runs it); it gets
 * the message on stdin with its line endings made CRLF
 * (`sieve_pipe_input_eol = lf` makes them LF) and must exit 0 within
 * `sieve_pipe_exec_timeout` (default 10 s) or it is killed and the action
 * fails. When this process is root the program runs as the mail user (an
 * IMAP process otherwise already is that user). Sockets
 * (`sieve_pipe_socket_dir`) are not supported.
 * The program is spawned asynchronously; nothing here blocks the event loop.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants, hostname } from 'node:os';
import { parseTime } from '../config/values.js';
import { programNameValid } from './compile.js';

export interface PipeSettings {
  binDir: string;
  timeoutMs: number;
  eol: 'crlf' | 'lf';
}

/** `sieve_pipe_*` from the plugin settings; null when no bin dir is configured (Pigeonhole: "extension is unconfigured"). */
export function pipeSettings(plugin: Record<string, string>): PipeSettings | null {
  const binDir = plugin.sieve_pipe_bin_dir;
  if (!binDir) return null;
  let timeoutMs = 10_000;
  if (plugin.sieve_pipe_exec_timeout) {
    // Pigeonhole reads a duration; a bare number means seconds there
    const t = /^\s*\d+\s*$/.test(plugin.sieve_pipe_exec_timeout) ? Number(plugin.sieve_pipe_exec_timeout) * 1000 : parseTime(plugin.sieve_pipe_exec_timeout, false);
    if (typeof t === 'number' && t >= 0) timeoutMs = t;
  }
  return { binDir, timeoutMs, eol: plugin.sieve_pipe_input_eol?.toLowerCase() === 'lf' ? 'lf' : 'crlf' };
}

/** Dovecot's i_stream_create_crlf / _lf: every line ends in CRLF (or LF). */
export function withEol(msg: Buffer, eol: 'crlf' | 'lf'): Buffer {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = msg.indexOf(0x0a); i >= 0; i = msg.indexOf(0x0a, i + 1)) {
    const cr = i > start && msg[i - 1] === 0x0d;
    out.push(msg.subarray(start, cr ? i - 1 : i), eol === 'crlf' ? CRLF : LF);
    start = i + 1;
  }
  out.push(msg.subarray(start));
  return Buffer.concat(out);
}
const CRLF = Buffer.from('\r\n');
const LF = Buffer.from('\n');

export interface PipeRun {
  program: string;
  args: string[];
  input: Buffer;
  env: { USER?: string; HOME?: string; HOST?: string };
  /** The mail user's numeric uid/gid, applied only when this process is root (Pigeonhole's restrict_access to the mail user). */
  uid?: number;
  gid?: number;
}

/**
 * Why a program did not do its job. `kind` picks Pigeonhole's wording: a
 * program that ran and exited non-zero "failed to execute", anything else
 * (not found, killed, timed out) "failed to pipe message".
 */
export class PipeError extends Error {
  constructor(message: string, readonly kind: 'exit' | 'error', readonly programLine?: { level: 'info' | 'error'; text: string }) { super(message); }
}

/** Dovecot's program client: SIGTERM at the timeout, SIGKILL when that was not enough. */
const KILL_GRACE_MS = 5000;

/** Run one program; resolves when it exited 0, rejects with PipeError (the reason, for the log) otherwise. */
export async function runPipe(set: PipeSettings, run: PipeRun): Promise<void> {
  if (!programNameValid(run.program)) throw new PipeError(`invalid program name \`${run.program}'`, 'error');
  const path = join(set.binDir, run.program);
  let st;
  try { st = await fs.stat(path); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PipeError(code === 'ENOENT' ? `program \`${run.program}' not found` : `failed to stat program \`${path}': ${(e as Error).message}`, 'error');
  }
  if (!st.isFile()) throw new PipeError(`executable \`${path}' for program \`${run.program}' is not a regular file`, 'error');
  if (st.mode & 0o002) throw new PipeError(`executable \`${path}' for program \`${run.program}' is world-writable`, 'error');
  const env: Record<string, string> = {};
  if (run.env.USER) env.USER = run.env.USER;
  if (run.env.HOME) env.HOME = run.env.HOME;
  env.HOST = run.env.HOST ?? hostname();
  const asRoot = process.geteuid?.() === 0;
  const child = spawn(path, run.args, {
    env, cwd: '/', stdio: ['pipe', 'ignore', 'pipe'],
    ...(asRoot && run.uid !== undefined ? { uid: run.uid } : {}),
    ...(asRoot && run.gid !== undefined ? { gid: run.gid } : {}),
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString('utf8'); });
  // a program that exits without reading its input must not fail the action by itself (EPIPE)
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(withEol(run.input, set.eol));
  let timedOut = false;
  let killer: NodeJS.Timeout | null = null;
  const timer = set.timeoutMs > 0 ? setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
  }, set.timeoutMs) : null;
  // 'exit', not 'close': a background child of the program may keep its stderr open
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  if (timer) clearTimeout(timer);
  if (killer) clearTimeout(killer);
  const tail = stderr.trim() ? ` (stderr: ${stderr.trim().split('\n').slice(-3).join(' | ')})` : '';
  const proc = `program exec:${path} (${child.pid ?? 0})`;
  if (result.error) throw new PipeError(`failed to execute program \`${path}': ${result.error.message}`, 'error');
  if (result.signal) {
    const signo = osConstants.signals[result.signal] ?? result.signal;
    const why = timedOut ? `execution timed out after ${set.timeoutMs} ms` : `killed by signal ${signo}`;
    throw new PipeError(`program \`${run.program}' ${why}${tail}`, 'error', { level: 'error', text: `${proc}: Forcibly terminated with signal ${signo}` });
  }
  if (result.code !== 0) {
    throw new PipeError(`program \`${run.program}' terminated with non-zero exit code ${result.code}${tail}`, 'exit', { level: 'info', text: `${proc}: Terminated with non-zero exit code ${result.code}` });
  }
}
