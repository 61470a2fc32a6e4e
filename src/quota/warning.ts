/**
 * Running a quota warning's command as Dovecot 2.3 does (quota.c
 * quota_warning_execute, then the `script` service, util/script.c). The
 * command's first word names a unix socket (`quota-warning`: relative to
 * base_dir; an optional `unix:` scheme), the other words are arguments.
 * Dovecot connects to that socket, and the `script` process its master
 * started for `service quota-warning { executable = script BINARY ARGS… }`
 * executes BINARY (relative: in /usr/lib/dovecot) with ARGS and then the
 * warning's arguments, as the service's `user`, with an empty environment
 * (env_clean) and the connection as stdin/stdout. Sealmail has no master that
 * starts services on demand, so it finds the service whose unix_listener is
 * that socket and executes the same command itself. A service that is not a
 * `script` one (or no service at all) is sent the request over the socket in
 * the script protocol, as Dovecot's program client sends it, for whatever
 * serves it. Spawned without waiting: a script that fails or cannot start is
 * logged and never fails the save that crossed the limit.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, isAbsolute, join } from 'node:path';
import type { DovecotConfig, ServiceConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';

/** Where Dovecot's `script` looks for a binary named without a path (PKG_LIBEXECDIR). */
const LIBEXEC_DIR = '/usr/lib/dovecot';
const log = new Logger('quota');

/** Dovecot's str_tabescape: what the script protocol's argument lines carry. */
const tabEscape = (v: string) => v.replace(/[\x01\t\r\n]/g, (c) => ({ '\x01': '\x011', '\t': '\x01t', '\r': '\x01r', '\n': '\x01n' })[c]!);

function basePath(config: DovecotConfig, p: string): string {
  return isAbsolute(p) ? p : join(config.get('base_dir') || '/run/dovecot', p);
}

/** `script [-e VARS] BINARY ARGS…` → BINARY's path and ARGS; null for any other executable. */
export function scriptCommand(executable: string): { binary: string; args: string[] } | null {
  const w = executable.trim().split(/\s+/).filter(Boolean);
  if (!w.length || basename(w[0]) !== 'script') return null;
  let i = 1;
  // script's own options (getopt "+e:"): the environment it passes on; a quota warning sends none
  while (i < w.length && w[i].startsWith('-')) i += w[i] === '-e' ? 2 : 1;
  if (i >= w.length) return null;
  const binary = w[i].startsWith('/') ? w[i] : `${LIBEXEC_DIR}/${w[i]}`;
  return { binary, args: w.slice(i + 1) };
}

/** The service listening on a socket path (unix_listener paths are relative to base_dir). */
export function serviceForSocket(config: DovecotConfig, path: string): ServiceConfig | null {
  for (const svc of config.services()) {
    if (svc.unixListeners.some((l) => basePath(config, l.path) === path)) return svc;
  }
  return null;
}

/** A service setting as the master reads it: `$default_internal_user` names another setting. */
function settingValue(config: DovecotConfig, v: string | undefined): string {
  return v?.startsWith('$') ? config.get(v.slice(1)) : v ?? '';
}

/** getpwnam/getgrnam through the files (read when a warning runs, asynchronously). */
async function lookupId(file: string, name: string): Promise<{ id: number; gid: number } | null> {
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const l of text.split('\n')) {
    const f = l.split(':');
    if (f[0] === name || (/^\d+$/.test(name) && f[2] === name)) return { id: Number(f[2]), gid: Number(f[3] ?? f[2]) };
  }
  return /^\d+$/.test(name) ? { id: Number(name), gid: Number(name) } : null;
}

const warnedIdentity = new Set<string>();

/**
 * The uid/gid to spawn with. Only root can switch; Sealmail gave up root for
 * the mail user at start-up, so a service user other than that one is
 * reported once and the script runs as Sealmail's own user (ISPmail's
 * `user = vmail` is Sealmail's mail_uid: nothing to switch).
 */
async function identity(config: DovecotConfig, svc: ServiceConfig): Promise<{ uid?: number; gid?: number }> {
  const user = settingValue(config, svc.settings.user);
  if (!user || typeof process.getuid !== 'function') return {};
  const pw = await lookupId('/etc/passwd', user);
  if (!pw) { log.error(`service(${svc.name}): unknown user ${user}: running the script as uid ${process.getuid()}`); return {}; }
  const group = settingValue(config, svc.settings.group);
  const gid = group ? (await lookupId('/etc/group', group))?.id ?? pw.gid : pw.gid;
  if (process.getuid() === 0) return { uid: pw.id, gid };
  if (pw.id !== process.getuid() && !warnedIdentity.has(svc.name)) {
    warnedIdentity.add(svc.name);
    log.warn(`service(${svc.name}): user = ${user} but Sealmail runs as uid ${process.getuid()} (mail_uid) and cannot switch: the script runs as uid ${process.getuid()}`);
  }
  return {};
}

/** Run a warning command (variables already expanded). Returns at once; the outcome is logged. */
export function runQuotaWarning(config: DovecotConfig, command: string, reason: string): void {
  const words = command.split(' ').filter(Boolean);
  if (!words.length) return;
  let socket = words[0];
  const colon = socket.indexOf(':');
  const scheme = colon < 0 ? 'unix' : socket.slice(0, colon);
  if (colon >= 0) socket = socket.slice(colon + 1);
  if (scheme !== 'unix') { log.error(`quota warning ${command}: only unix sockets are supported (${scheme})`); return; }
  const path = basePath(config, socket);
  const args = words.slice(1);
  log.debug(`Executing warning: ${command} (because ${reason})`);
  const svc = serviceForSocket(config, path);
  const script = svc ? scriptCommand(settingValue(config, svc.settings.executable)) : null;
  if (svc && script) { void execScript(config, svc, script.binary, [...script.args, ...args]).catch((e: Error) => log.error(`service(${svc.name}): ${e.message}`)); return; }
  sendOverSocket(path, args);
}

async function execScript(config: DovecotConfig, svc: ServiceConfig, binary: string, argv: string[]): Promise<void> {
  const id = await identity(config, svc);
  let child;
  try {
    // env_clean(): the script starts with no environment at all; base_dir is the master's working directory
    child = spawn(binary, argv, { env: {}, cwd: config.get('base_dir') || '/', stdio: ['ignore', 'ignore', 'pipe'], ...id });
  } catch (e) {
    log.error(`service(${svc.name}): execvp(${binary}) failed: ${(e as Error).message}`);
    return;
  }
  const slog = new Logger(`service(${svc.name})`);
  child.on('error', (e: NodeJS.ErrnoException) => slog.error(`execvp(${binary}) failed: ${e.code === 'ENOENT' ? 'No such file or directory' : e.code === 'EACCES' ? 'Permission denied' : e.message}`));
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { err += d; });
  child.on('close', (code, signal) => {
    for (const line of err.split('\n').filter(Boolean)) slog.error(line);
    if (child.pid === undefined) return; // never started: the error above said why
    // the master's words for a service child that failed
    if (signal) slog.error(`child ${child.pid} killed with signal ${signal}`);
    else if (code) slog.error(`child ${child.pid} returned error ${code}`);
  });
}

/** Dovecot's program client request for the script service: VERSION, "noreply", the arguments, an empty line. */
function sendOverSocket(path: string, args: string[]): void {
  const s = connect(path);
  s.setTimeout(1000, () => { log.error(`net_connect_unix(${path}) failed: Connection timed out`); s.destroy(); });
  s.on('connect', () => { s.setTimeout(0); s.end(`VERSION\tscript\t4\t0\nnoreply\n${args.map((a) => tabEscape(a) + '\n').join('')}\n`); });
  s.on('error', (e) => log.error(`net_connect_unix(${path}) failed: ${e.message}`));
}
