/**
 * The `sealmail` process: `sealmail [-c FILE] [-F] [--demo]`. Loads the
 * Dovecot configuration tree (any error names file:line and exits non-zero
 * before a single listener opens, as `dovecot` does), binds the listeners,
 * drops root, and runs in the foreground until SIGTERM/SIGINT, which close the
 * listeners and exit 0.
 *
 * IMAP runs in several worker processes when configured (imap-workers.ts);
 * the master then only accepts IMAP connections and hands them over, and
 * serves LMTP, the auth socket, quota-status and ManageSieve itself.
 */
import { ImapService } from './imap-service.js';
import { ImapWorkerPool, imapProcessCount, type WorkerMessage } from './imap-workers.js';
import { DeliveryServices, lmtpInetSpecs } from './delivery-services.js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ManageSieveService, managesieveListenerSpecs } from './managesieve-service.js';
import { ConnectionTable } from './connection-table.js';
import { protocolLimits, type Admission, type ConnectionSlot } from '../config/connection-limits.js';
import { loadConfig, ConfigError, type DovecotConfig } from '../config/index.js';
import { compatStatus } from '../config/known-settings.js';
import { adoptLogFds, configureLogging, Logger, openLogFiles, reopenLogFiles } from '../log/logger.js';
import { closeListeners, openListeners, parseListen, tlsMinVersion, type ListenerSpec, type TlsMaterial } from './listeners.js';
import { dropPrivileges } from './privileges.js';
import { guardAccept, installLastResort } from './faults.js';
import { configFilesSnapshot, installConfigFiles, preloadConfigFile, startRecording, stopRecording, type ConfigFilesSnapshot } from '../config/privileged-files.js';
import { prepareDemo, type DemoInstance } from './demo.js';
import { RootMaster, rootMasterApplies } from './root-master.js';
import { ROLE_FLAG, type ChildMessage, type Role } from './process-model.js';
import { runLoginProcess } from './login-process.js';
import { runAuthProcess } from './auth-process.js';
import { runMailProcess } from './mail-process.js';
import { runLmtpProcess } from './lmtp-process.js';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';

const VERSION = '0.1.0';
/** Dovecot's exit code for fatal start-up errors (FATAL_DEFAULT). */
const EXIT_FATAL = 89;
/** Dovecot's exit code when a log file cannot be opened (FATAL_LOGOPEN). */
const EXIT_LOGOPEN = 80;

interface Args { configPath: string; demo: boolean; imapWorker: boolean; role?: Role }

function parseArgs(argv: string[]): Args {
  const a: Args = { configPath: process.env.SEALMAIL_CONFIG ?? '/etc/dovecot/dovecot.conf', demo: false, imapWorker: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '-c') { a.configPath = argv[++i] ?? ''; if (!a.configPath) throw new Error('-c needs a file'); }
    else if (v === '--demo') a.demo = true;
    else if (v === '--imap-worker') a.imapWorker = true; // internal: started by the master over IPC
    else if (Object.values(ROLE_FLAG).includes(v)) a.role = (Object.keys(ROLE_FLAG) as Role[]).find((r) => ROLE_FLAG[r] === v); // internal: root-master.ts
    else if (v === '-F') { /* always in the foreground; accepted for dovecot -F scripts */ }
    else throw new Error(`unknown option ${v} (usage: sealmail [-c FILE] [-F] [--demo])`);
  }
  return a;
}

/** The listeners of the protocols we serve, from `service` sections. */
export function listenerSpecs(config: DovecotConfig): ListenerSpec[] {
  const protocols = config.get('protocols').split(/\s+/).filter(Boolean);
  const listen = parseListen(config.get('listen'));
  const specs: ListenerSpec[] = [];
  for (const svc of config.services()) {
    if (svc.name !== 'imap-login' || !protocols.includes('imap')) continue;
    for (const l of svc.inetListeners) {
      const port = Number(l.port ?? 0);
      if (!port) continue; // port = 0 disables a listener, as in Dovecot
      const ssl = l.ssl === 'yes';
      const addresses = l.address ? parseListen(l.address) : listen;
      for (const address of addresses) specs.push({ service: svc.name, name: l.name, address, port, ssl });
    }
  }
  return specs;
}

function tlsMaterial(config: DovecotConfig): TlsMaterial | null {
  if (config.get('ssl') === 'no') return null;
  const cert = config.get('ssl_cert');
  const key = config.get('ssl_key');
  if (!cert || !key) return null;
  return { cert, key, passphrase: config.get('ssl_key_password') || undefined, minVersion: tlsMinVersion(config.get('ssl_min_protocol')) };
}

function printDemo(demo: DemoInstance): void {
  process.stdout.write(`
Sealmail demo is running (configuration: ${demo.configPath})
  login:     ${demo.user}
  password:  ${demo.password}
  IMAP:      127.0.0.1:${demo.imapPort} (STARTTLS)   IMAPS: 127.0.0.1:${demo.imapsPort}
  try:       bin/sealadm -c ${demo.configPath} auth test ${demo.user}
Stop with Ctrl-C.
`);
}

/** The passdb/userdb files ISPmail keeps root-only (dovecot-sql.conf.ext). */
function authFiles(config: DovecotConfig): string[] {
  const out: string[] = [];
  for (const db of [...config.passdbs(), ...config.userdbs()]) {
    const path = (db.args ?? '').split(/\s+/).filter(Boolean).pop();
    if (path && path.startsWith('/') && db.driver === 'sql') out.push(path);
  }
  return out;
}

/** Read the auth files while still root; the SQL connection is opened lazily, later. */
function preloadAuthFiles(config: DovecotConfig): void {
  for (const path of authFiles(config)) preloadConfigFile(path);
}

/** A child of the root master (root-master.ts), started as its service's user. */
async function runChild(role: Role, configPath: string): Promise<void> {
  process.on('SIGUSR1', () => reopenLogFiles());
  const init = await new Promise<Extract<ChildMessage, { t: 'init' }>>((resolve) => process.once('message', (m: ChildMessage) => resolve(m.t === 'init' ? m : { t: 'init', files: { files: {}, globs: {} } })));
  installConfigFiles(init.files);
  adoptLogFds();
  const config = await loadServerConfig(configPath);
  if (role === 'login') runLoginProcess(config, tlsMaterial(config), { login: init.loginSocket ?? '', auth: init.authSocket ?? '' });
  else if (role === 'auth') runAuthProcess(config);
  else if (role === 'lmtp') runLmtpProcess(config);
  else runMailProcess(config);
}

/**
 * Root on a tree without mail_uid (ISPmail: the uid comes from the userdb):
 * Dovecot's process model, root-master.ts: IMAP, ManageSieve, LMTP, quota-status and the auth sockets.
 */
async function runAsRootMaster(config: DovecotConfig, configPath: string, log: Logger, demo: DemoInstance | null): Promise<void> {
  preloadAuthFiles(config);
  const master = new RootMaster({ config, script: fileURLToPath(import.meta.url), args: ['-c', configPath], imapSpecs: listenerSpecs(config), sieveSpecs: managesieveListenerSpecs(config), tls: tlsMaterial(config), authFiles: authFiles(config) });
  let lines: string[];
  try { lines = await master.start(); } catch (e) {
    const text = (e as Error).message;
    // a configuration error is doveconf's, on stderr; anything else the master's, in the log
    if (text.startsWith('Error in configuration file')) process.stderr.write(`doveconf: Fatal: ${text}\n`); else log.fatal(text);
    await master.close();
    process.exit(EXIT_FATAL);
  }
  log.info(`Sealmail v${VERSION} starting up for ${config.get('protocols').trim()} (root master)`);
  for (const l of lines) log.info(l);
  if (demo) printDemo(demo);
  const stop = async (sig: string) => {
    log.info(`Sealmail v${VERSION} stopping (${sig})`);
    await master.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  process.on('SIGUSR1', () => { reopenLogFiles(); for (const c of master.pids) { try { process.kill(c.pid, 'SIGUSR1'); } catch { /* exiting */ } } });
}

/** The configuration and logging, as `dovecot` sets them up (exit 89 on errors). */
async function loadServerConfig(path: string): Promise<DovecotConfig> {
  let config: DovecotConfig;
  try {
    config = await loadConfig(path, { readValueFiles: true });
  } catch (e) {
    const msg = e instanceof ConfigError ? e.message : `Error reading configuration: ${(e as Error).message}`;
    process.stderr.write(`doveconf: Fatal: ${msg}\n`);
    process.exit(EXIT_FATAL);
  }
  configureLogging({
    log_path: config.get('log_path'),
    info_log_path: config.get('info_log_path'),
    debug_log_path: config.get('debug_log_path'),
    log_timestamp: config.get('log_timestamp'),
    debug: new Set([
      ...(config.getBool('auth_debug') ? ['auth'] : []),
      ...(config.getBool('mail_debug') ? ['mail'] : []),
    ]),
  });
  return config;
}

/**
 * An IMAP worker process (see imap-workers.ts): started by the master after
 * it dropped root, it serves the connections the master hands over.
 */
async function runImapWorker(config: DovecotConfig): Promise<void> {
  const imap = new ImapService(config, tlsMaterial(config));
  dropPrivileges(config.get('mail_uid'), config.get('mail_gid')); // a no-op: the master forks us after dropping root
  // a master killed with -9 leaves a broken channel before 'disconnect' arrives: a failed send ends us quietly
  const send = (m: WorkerMessage) => { if (process.connected) process.send!(m, undefined, {}, (e) => { if (e) process.exit(0); }); };
  imap.login.penalty.onChange = (op, ip, now) => send({ t: 'penalty', op, ip, now });
  imap.onLoad = (sessions) => send({ t: 'load', sessions });
  // the master counts every connection (connection-table.ts): logins wait for its verdict
  const verdicts = new Map<number, (v: Admission) => void>();
  const slot = (id: number): ConnectionSlot => ({
    admit: (user) => new Promise<Admission>((resolve) => { verdicts.set(id, resolve); send({ t: 'admit', id, user }); }),
    release: () => { verdicts.get(id)?.('full'); verdicts.delete(id); send({ t: 'closed', id }); },
  });
  const accept = guardAccept(new Logger('imap-login'), (s: Socket, spec: ListenerSpec, id: number) => imap.acceptHandedOff(s, spec, id, slot(id)));
  process.on('message', (m: WorkerMessage, handle?: unknown) => {
    if (m.t === 'conn' && handle) accept(handle as Socket, m.spec, m.id);
    else if (m.t === 'conn') send({ t: 'closed', id: m.id }); // the socket was lost on the way
    else if (m.t === 'evict') imap.evict(m.id);
    else if (m.t === 'admitted') { verdicts.get(m.id)?.(m.verdict); verdicts.delete(m.id); }
    else if (m.t === 'penalty') imap.login.penalty.apply(m.op, m.ip, m.now);
    else if (m.t === 'shutdown') void imap.close().finally(() => process.exit(0));
  });
  // the master is gone (even kill -9): stop at once rather than serve on alone
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined); // Ctrl-C reaches the whole group: the master decides
  process.on('SIGTERM', () => void imap.close().finally(() => process.exit(0)));
  send({ t: 'ready' });
}

export async function main(argv: string[]): Promise<void> {
  const log = new Logger('master');
  // what escapes every session's fault boundary is a bug: Panic line, exit, restarted by the supervisor
  installLastResort(argv.includes('--imap-worker') || argv.includes(ROLE_FLAG.mail) ? new Logger('imap') : argv.includes(ROLE_FLAG.login) ? new Logger('imap-login') : argv.includes(ROLE_FLAG.auth) ? new Logger('auth') : argv.includes(ROLE_FLAG.lmtp) ? new Logger('lmtp') : log);
  let args: Args;
  try { args = parseArgs(argv); } catch (e) { process.stderr.write(`Fatal: ${(e as Error).message}\n`); process.exit(64); }
  let demo: DemoInstance | null = null;
  if (args.demo) {
    const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    demo = await prepareDemo(repoRoot);
    args.configPath = demo.configPath;
  }
  if (args.role) { await runChild(args.role, args.configPath); return; }
  if (args.imapWorker) {
    // first thing: relayed by the master (doveadm log reopen); Node's default for SIGUSR1 would start its inspector
    process.on('SIGUSR1', () => reopenLogFiles());
    // the master sends the files it read as root first (privileged-files.ts)
    const files = await new Promise<ConfigFilesSnapshot>((resolve) => process.once('message', (m: WorkerMessage) => resolve(m.t === 'init' ? m.files : { files: {}, globs: {} })));
    installConfigFiles(files);
    adoptLogFds(); // the master's log files, opened as root (logger.ts)
    await runImapWorker(await loadServerConfig(args.configPath));
    return;
  }
  startRecording(); // root-only files stay readable after privileges are dropped (privileged-files.ts)
  const config = await loadServerConfig(args.configPath);
  // as root, before the drop: a root-owned log file keeps receiving lines (logger.ts)
  try { openLogFiles(); } catch (e) { process.stderr.write(`Fatal: ${(e as Error).message}\n`); process.exit(EXIT_LOGOPEN); }
  for (const w of config.warnings) log.warn(w);
  for (const key of config.explicitGlobals()) {
    if (compatStatus(key) === 'accepted, no effect yet (warns)') log.warn(`${key}: not supported by Sealmail yet, setting has no effect (see dovecot-compat.md)`);
  }
  if (rootMasterApplies(config)) { await runAsRootMaster(config, args.configPath, log, demo); return; }

  let open;
  const tls = tlsMaterial(config);
  const imap = new ImapService(config, tls);
  const managesieve = new ManageSieveService(config, tls, imap.login.penalty); // one anvil for every login
  const delivery = new DeliveryServices(config);
  let workers: ImapWorkerPool | null = null;
  // Listeners open as root, but no client is served before root is given up: an LMTP delivery or a
  // ManageSieve upload made in between would leave mail files owned by root (seen under kill -9
  // restarts, where clients connect the moment the port is there)
  let unprivileged!: () => void;
  const dropped = new Promise<void>((r) => { unprivileged = r; });
  const afterDrop = <S extends Duplex, A extends unknown[]>(serve: (s: S, ...a: A) => void) => guardAccept(log, (s: S, ...a: A) => {
    s.on('error', () => undefined); // a client gone while it waits is not an error
    return dropped.then(() => serve(s, ...a));
  });
  try {
    const imapSpecs = listenerSpecs(config);
    const processes = imapSpecs.length ? imapProcessCount(config) : 1;
    if (processes > 1) {
      workers = new ImapWorkerPool(processes, fileURLToPath(import.meta.url), ['-c', args.configPath], log, new ConnectionTable(protocolLimits(config, 'imap'), log));
      // TLS happens in the worker: the master only accepts and hands the socket on, unread
      const w = workers;
      w.sharePenalty(imap.login.penalty); // ManageSieve's logins count with the workers' IMAP ones
      open = await openListeners(imapSpecs, tls, guardAccept(log, (s, spec) => w.dispatch(s as Socket, spec)), { handOff: true });
    } else {
      open = await openListeners(imapSpecs, tls, afterDrop((s, spec) => imap.accept(s, spec)));
    }
    open.push(...await openListeners(managesieveListenerSpecs(config), tls, afterDrop((s, spec) => managesieve.accept(s, spec))));
    if (config.get('protocols').split(/\s+/).includes('lmtp')) open.push(...await openListeners(lmtpInetSpecs(config), null, afterDrop((s) => delivery.acceptLmtp(s as Socket))));
    await delivery.openUnix((m) => log.warn(m), afterDrop);
    preloadAuthFiles(config);
    dropPrivileges(config.get('mail_uid'), config.get('mail_gid'));
    unprivileged();
    stopRecording();
    if (workers) await workers.start(configFilesSnapshot());
  } catch (e) {
    log.fatal((e as Error).message);
    await workers?.close();
    process.exit(EXIT_FATAL);
  }
  log.info(`Sealmail v${VERSION} starting up for ${config.get('protocols').trim()}`);
  for (const l of open) log.info(`listening on ${l.spec.address}:${l.port} (${l.spec.service}/${l.spec.name}${l.spec.ssl ? ', ssl' : ''})`);
  for (const l of delivery.open) log.info(`listening on ${l.spec.path} (${l.spec.service})`);
  if (workers) log.info(`imap: ${workers.pids.length} worker processes (${workers.pids.join(' ')})`);
  if (demo) printDemo(demo);

  const stop = async (sig: string) => {
    log.info(`Sealmail v${VERSION} stopping (${sig})`);
    // together: a handed-off connection keeps its listener open until its worker closes it
    await Promise.all([closeListeners(open), workers?.close()]);
    await imap.close();
    await managesieve.close();
    await delivery.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  // doveadm log reopen / logrotate: reopen here and in every worker
  process.on('SIGUSR1', () => { reopenLogFiles(); for (const pid of workers?.pids ?? []) { try { process.kill(pid, 'SIGUSR1'); } catch { /* exiting */ } } });
}

// Run when executed directly (node dist/src/server/main.js …), as tests do; bin/sealmail imports main().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) void main(process.argv.slice(2));
