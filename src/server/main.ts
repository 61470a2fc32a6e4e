/**
 * The `sealmail` process: `sealmail [-c FILE] [-F] [--demo]`. Loads the
 * Dovecot configuration tree (any error names file:line and exits non-zero
 * before a single listener opens, as `dovecot` does), binds the listeners,
 * drops root, and runs in the foreground until SIGTERM/SIGINT, which close the
 * listeners and exit 0. SIGHUP re-reads the tree for new connections and
 * leaves the sessions as they are (reloadOnSighup); base_dir/master.pid and
 * the admin socket (sealadm who/kick) are kept as Dovecot keeps master.pid
 * and anvil's socket.
 *
 * The master serves no client itself: every service (IMAP, ManageSieve,
 * LMTP, the auth sockets, quota-status) runs in its own supervised pool of
 * processes (service-pool.ts), forked after root is given up; the master
 * accepts each connection and hands it over unread (service-processes.ts).
 *
 * Each process loads only its own role's code (dynamic imports below): a
 * login or auth process that loaded every protocol's modules kept ~5-13 MiB
 * more of heap and code at rest (bench/imap-load.bench.ts, memory at rest).
 */
import type { WorkerMessage } from './service-pool.js';
import { loadConfig, ConfigError, type DovecotConfig } from '../config/index.js';
import { adoptLogFds, configureLogging, Logger, openLogFiles, reopenLogFiles } from '../log/logger.js';
import { collectErrors, reportErrorsToMaster } from '../log/log-error-buffer.js';
import { serviceListenerSpecs, type ListenerSpec } from './listeners.js';
import { tlsMaterial, tlsSettingsError } from './tls-settings.js';
import { dropPrivileges } from './privileges.js';
import { installLastResort } from './faults.js';
import { configFilesSnapshot, installConfigFiles, preloadConfigFile, startRecording, stopRecording, type ConfigFilesSnapshot } from '../config/privileged-files.js';
import type { DemoInstance } from './demo.js';
import type { HandedOffService } from './service-worker.js';
import { SERVICE_NAMES, type ServiceName } from './service-names.js';
import { ROLE_FLAG, type ChildMessage, type Role } from './process-model.js';
import { tcpAddonError } from '../util/tcp-socket.js';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { realpathSync } from 'node:fs';
import type { StatsListener } from './stats-http.js';
import { reportStatsTo, type StatsBatch } from '../util/stats-events.js';
import { setAppPasswordCheck } from '../auth/engine.js';
import { verifyAppPassword } from '../crypt/app-passwords.js';

/** A service or child process sends its finished events to the master when the tree has `metric {}` sections (stats-metrics.ts). */
function reportStats(config: DovecotConfig): void {
  if (config.metrics().length) reportStatsTo((batch: StatsBatch) => { if (process.connected) process.send!({ t: 'stats', batch }); });
}

const VERSION = '0.1.0';
/** Dovecot's exit code for fatal start-up errors (FATAL_DEFAULT). */
const EXIT_FATAL = 89;
/** Dovecot's exit code when a log file cannot be opened (FATAL_LOGOPEN). */
const EXIT_LOGOPEN = 80;

interface Args { configPath: string; demo: boolean; service: ServiceName | null; role?: Role }

function parseArgs(argv: string[]): Args {
  const a: Args = { configPath: process.env.SEALMAIL_CONFIG ?? '/etc/dovecot/dovecot.conf', demo: false, service: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '-c') { a.configPath = argv[++i] ?? ''; if (!a.configPath) throw new Error('-c needs a file'); }
    else if (v === '--demo') a.demo = true;
    else if (v === '--service') { // internal: a service process started by the master over IPC
      const name = argv[++i] as ServiceName;
      if (!SERVICE_NAMES.includes(name)) throw new Error(`--service: unknown service ${name}`);
      a.service = name;
    }
    else if (Object.values(ROLE_FLAG).includes(v)) a.role = (Object.keys(ROLE_FLAG) as Role[]).find((r) => ROLE_FLAG[r] === v); // internal: root-master.ts
    else if (v === '-F') { /* always in the foreground; accepted for dovecot -F scripts */ }
    else throw new Error(`unknown option ${v} (usage: sealmail [-c FILE] [-F] [--demo])`);
  }
  return a;
}

/** The listeners of `service imap-login` when `protocols` has imap. */
export function listenerSpecs(config: DovecotConfig): ListenerSpec[] {
  const protocols = config.get('protocols').split(/\s+/).filter(Boolean);
  return protocols.includes('imap') ? serviceListenerSpecs(config, 'imap-login') : [];
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
  reportErrorsToMaster(); // sealadm log errors: the master keeps the ring
  const config = await loadServerConfig(configPath);
  reportStats(config);
  if (role === 'login') await (await import('./login-process.js')).runLoginProcess(config, tlsMaterial(config), { login: init.loginSocket ?? '', auth: init.authSocket ?? '' });
  else if (role === 'auth') (await import('./auth-process.js')).runAuthProcess(config);
  else if (role === 'lmtp') (await import('./lmtp-process.js')).runLmtpProcess(config, init.copySocket ?? '', init.spoolDir);
  else (await import('./mail-process.js')).runMailProcess(config);
}

/** What the root-master mode does not do yet (said at start; README and dovecot-compat.md list them too). */
const ROOT_MASTER_GAPS = [
  'the service {} settings service_count, user, vsz_limit and idle_kill are not applied in this mode',
];

/**
 * Root on a tree without mail_uid (ISPmail: the uid comes from the userdb):
 * Dovecot's process model, root-master.ts: IMAP, ManageSieve, POP3, LMTP, quota-status and the auth sockets.
 */
async function runAsRootMaster(config: DovecotConfig, configPath: string, log: Logger, demo: DemoInstance | null, stats: StatsListener[]): Promise<void> {
  preloadAuthFiles(config);
  const { RootMaster } = await import('./root-master.js');
  const { managesieveListenerSpecs } = await import('./managesieve-service.js');
  const { pop3ListenerSpecs } = await import('./pop3-service.js');
  const options = (c: DovecotConfig) => ({ config: c, script: fileURLToPath(import.meta.url), args: ['-c', configPath], imapSpecs: listenerSpecs(c), sieveSpecs: managesieveListenerSpecs(c), pop3Specs: pop3ListenerSpecs(c), tls: tlsMaterial(c), authFiles: authFiles(c) });
  const master = new RootMaster(options(config));
  const admin = await (await import('./master-pid.js')).adminFiles(config, log, () => master.admin(), false);
  let lines: string[];
  try { lines = await master.start(); } catch (e) {
    const text = (e as Error).message;
    // a configuration error is doveconf's, on stderr; anything else the master's, in the log
    if (text.startsWith('Error in configuration file')) process.stderr.write(`doveconf: Fatal: ${text}\n`); else log.fatal(text);
    await master.close();
    admin.stop();
    process.exit(EXIT_FATAL);
  }
  log.info(`Sealmail v${VERSION} starting up for ${config.get('protocols').trim()} (root master)`);
  for (const l of lines) log.info(l);
  // nothing silent: what this mode does not do yet is said at every start (dovecot-compat.md, `mail_uid`)
  for (const w of ROOT_MASTER_GAPS) log.warn(`root master (no mail_uid): ${w}`);
  if (demo) printDemo(demo);
  const stop = async (sig: string) => {
    log.info(`Sealmail v${VERSION} stopping (${sig})`);
    await master.close();
    (await import('./stats-http.js')).closeStatsListeners(stats);
    admin.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  (await import('./reload.js')).reloadOnSighup(configPath, log, { preload: preloadAuthFiles, tls: tlsMaterial }, (c) => master.reload(options(c), configFilesSnapshot()));
  process.on('SIGUSR1', () => { reopenLogFiles(); for (const c of master.pids) { try { process.kill(c.pid, 'SIGUSR1'); } catch { /* exiting */ } } });
}

/** The configuration and logging, as `dovecot` sets them up (exit 89 on errors). */
async function loadServerConfig(path: string): Promise<DovecotConfig> {
  let config: DovecotConfig;
  try {
    config = await loadConfig(path, { readValueFiles: true });
    const tlsError = tlsSettingsError(config);
    if (tlsError) throw new ConfigError(path, 0, tlsError);
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
    mail_log_prefix: config.get('mail_log_prefix'),
    debug: new Set([
      ...(config.getBool('auth_debug') ? ['auth'] : []),
      ...(config.getBool('mail_debug') ? ['mail'] : []),
    ]),
  });
  return config;
}

/** What a service process serves (service-worker.ts): its service, built from the configuration. */
async function serviceFor(name: ServiceName, config: DovecotConfig): Promise<HandedOffService> {
  const tls = tlsMaterial(config);
  switch (name) {
    case 'imap': {
      const imap = new (await import('./imap-service.js')).ImapService(config, tls);
      return {
        acceptHandedOff: (s, spec, id, slot) => imap.acceptHandedOff(s, spec, id, slot),
        evict: (id) => imap.evict(id),
        kick: (id) => imap.kick(id),
        penalty: imap.login.penalty,
        close: () => imap.close(),
      };
    }
    case 'managesieve': return new (await import('./managesieve-service.js')).ManageSieveService(config, tls);
    case 'pop3': return new (await import('./pop3-service.js')).Pop3Service(config, tls);
    default: return new (await import('./delivery-services.js')).DeliveryServices(config); // lmtp, auth, quota-status: each in processes of its own
  }
}

export async function main(argv: string[]): Promise<void> {
  // every server process's logins (IMAP, POP3, ManageSieve, SMTP AUTH) accept the users' app passwords
  setAppPasswordCheck(verifyAppPassword);
  const log = new Logger('master');
  // what escapes every session's fault boundary is a bug: Panic line, exit, restarted by the supervisor
  const serviceArg = argv.indexOf('--service');
  const roleLog = argv.includes(ROLE_FLAG.mail) ? 'imap' : argv.includes(ROLE_FLAG.login) ? 'imap-login' : argv.includes(ROLE_FLAG.auth) ? 'auth' : argv.includes(ROLE_FLAG.lmtp) ? 'lmtp' : null;
  installLastResort(serviceArg >= 0 ? new Logger(argv[serviceArg + 1] ?? 'service') : roleLog ? new Logger(roleLog) : log);
  let args: Args;
  try { args = parseArgs(argv); } catch (e) { process.stderr.write(`Fatal: ${(e as Error).message}\n`); process.exit(64); }
  let demo: DemoInstance | null = null;
  if (args.demo) {
    const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    demo = await (await import('./demo.js')).prepareDemo(repoRoot);
    args.configPath = demo.configPath;
  }
  if (args.role) { await runChild(args.role, args.configPath); return; }
  if (args.service) {
    // first thing: relayed by the master (doveadm log reopen); Node's default for SIGUSR1 would start its inspector
    process.on('SIGUSR1', () => reopenLogFiles());
    // the master sends the files it read as root first (privileged-files.ts), and the auth penalties so far
    const init = await new Promise<WorkerMessage>((resolve) => process.once('message', resolve));
    installConfigFiles(init.t === 'init' ? init.files : { files: {}, globs: {} });
    adoptLogFds(); // the master's log files, opened as root (logger.ts)
    reportErrorsToMaster(); // sealadm log errors: the master keeps the ring
    const config = await loadServerConfig(args.configPath);
    reportStats(config);
    const { runServiceWorker } = await import('./service-worker.js');
    runServiceWorker(await serviceFor(args.service, config), new Logger(args.service), init.t === 'init' ? init.penalties : []);
    return;
  }
  // until the reload handler is in place (reloadOnSighup), a SIGHUP must not end the master (Node's default)
  process.on('SIGHUP', () => undefined);
  collectErrors(); // the ring sealadm log errors reads (log-error-buffer.ts)
  startRecording(); // root-only files stay readable after privileges are dropped (privileged-files.ts)
  const config = await loadServerConfig(args.configPath);
  // as root, before the drop: a root-owned log file keeps receiving lines (logger.ts)
  try { openLogFiles(); } catch (e) { process.stderr.write(`Fatal: ${(e as Error).message}\n`); process.exit(EXIT_LOGOPEN); }
  for (const w of config.warnings) log.warn(w);
  // said once: without the addon a client with Nagle on waits for our delayed ACKs (tcp-socket.ts)
  if (tcpAddonError) log.warn(`TCP_QUICKACK unavailable, delayed ACKs may stall clients: ${tcpAddonError}`);
  // what Sealmail does not do as Dovecot would, each said once by name (support-report.ts);
  // anything that would lose or hide mail stops the start before a listener opens
  const findings = (await import('../config/support-report.js')).supportFindings(config);
  for (const f of findings) (f.level === 'fatal' ? log.fatal(f.text) : log.warn(f.text));
  if (findings.some((f) => f.level === 'fatal')) process.exit(EXIT_FATAL);
  for (const w of (await import('../mailstore/compression/settings.js')).zlibStartupWarnings(config)) log.warn(w);
  // service stats { inet_listener http }: GET /metrics, served by the master in both process models
  let stats: StatsListener[];
  const { openStatsListeners } = await import('./stats-http.js');
  const { startMetrics } = await import('./stats-metrics.js');
  try { stats = await openStatsListeners(config, startMetrics(config)); } catch (e) { log.fatal((e as Error).message); process.exit(EXIT_FATAL); }
  for (const l of stats) log.info(`listening on ${l.address}:${l.port} (stats/http)`);
  // plugin { sealmail_poppassd_listen }: webmail password changes (poppassd.ts), served by the master in both models
  try { await (await import('./poppassd.js')).openPoppassd(config, args.configPath, log); } catch (e) { log.fatal((e as Error).message); process.exit(EXIT_FATAL); }
  if ((await import('./root-master.js')).rootMasterApplies(config)) { await runAsRootMaster(config, args.configPath, log, demo, stats); return; }

  const { ServiceProcesses } = await import('./service-processes.js');
  const services = new ServiceProcesses(config, fileURLToPath(import.meta.url), ['-c', args.configPath], log);
  const admin = await (await import('./master-pid.js')).adminFiles(config, log, () => services.admin(), true);
  try {
    await services.listen(listenerSpecs(config), tlsMaterial(config));
    preloadAuthFiles(config);
    dropPrivileges(config.get('mail_uid'), config.get('mail_gid'));
    stopRecording();
    // connections arriving until a process is ready wait for it (service-pool.ts)
    await services.start(configFilesSnapshot());
  } catch (e) {
    log.fatal((e as Error).message);
    await services.close();
    admin.stop();
    process.exit(EXIT_FATAL);
  }
  log.info(`Sealmail v${VERSION} starting up for ${config.get('protocols').trim()}`);
  for (const l of services.inet) log.info(`listening on ${l.spec.address}:${l.port} (${l.spec.service}/${l.spec.name}${l.spec.ssl ? ', ssl' : ''})`);
  for (const l of services.unix) log.info(`listening on ${l.spec.path} (${l.spec.service})`);
  for (const p of services.pools) log.info(`${p.service}: ${p.pids.length} worker processes (${p.pids.join(' ')})`);
  if (demo) printDemo(demo);

  const stop = async (sig: string) => {
    log.info(`Sealmail v${VERSION} stopping (${sig})`);
    await services.close();
    (await import('./stats-http.js')).closeStatsListeners(stats);
    admin.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  (await import('./reload.js')).reloadOnSighup(args.configPath, log, { preload: preloadAuthFiles, tls: tlsMaterial }, (c) => services.reload(c, configFilesSnapshot(), listenerSpecs(c), tlsMaterial(c)));
  // doveadm log reopen / logrotate: reopen here and in every service process
  process.on('SIGUSR1', () => { reopenLogFiles(); services.signal('SIGUSR1'); });
}

// Run when executed directly (node dist/src/server/main.js …), as tests do; bin/sealmail imports main().
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) void main(process.argv.slice(2));
