/**
 * One IMAP connection (RFC 3501 / RFC 9051 state machine): bytes in through
 * the wire reader, commands dispatched one at a time in order, responses out
 * through the encoder with socket backpressure, untagged updates for the
 * selected mailbox, raw-line modes for IDLE's DONE and AUTHENTICATE
 * continuations, STARTTLS, and Dovecot's limits (pre-login bad-command
 * limit, APPENDLIMIT, the login deadline and autologout, and the master's
 * verdicts on connection counts: see config/connection-limits.ts). The
 * mailbox work lives in the command modules; this file never touches the
 * filesystem.
 */
import type { Socket } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import { constants as zc, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import { plaintextMechanisms } from '../auth/mechanisms.js';
import type { DovecotConfig } from '../config/settings.js';
import { Logger } from '../log/logger.js';
import type { MailStore } from '../mailstore/store.js';
import type { UserMetadata } from '../mailstore/metadata.js';
import { mutf7ToUtf8, utf8ToMutf7 } from '../mailstore/api/mailbox-utf7.js';
import type { UserQuota } from '../quota/quota.js';
import type { ImapSieveHook } from '../sieve/imapsieve.js';
import { CommandReader, badText, type ImapArg, type LiteralInfo, type ReaderEvent } from './wire/parser.js';
import { writeResponse, type Response, type ResponseCode, type ImapValue, atom, num, list } from './wire/encoder.js';
import { formatSequenceSet, normalizeSequenceSet } from './wire/sequence.js';
import type { Selected, Update } from './selected.js';
import { announceMailboxKeywords, keywordsIn } from './keyword-flags.js';
import { COMMANDS, type CommandContext } from './commands/index.js';
import { sendChangedMatches, sendExpungedMatches } from './commands/search.js';
import { fetchNewForNotify } from './commands/fetch.js';
import { NOTIFY_DELAY_MS, NOTIFY_WATCH_SELECTED_DELAY_MS, type NotifyWatch } from './notify.js';
import { watchFolder, type ChangeSubscription } from '../mailstore/changes.js';
import type { NotifySpec } from './notify-filter.js';
import type { ImapLogin, LoginResult } from './login.js';
import { splitPlugins } from '../config/mail-plugins.js';
import { PRELOGIN_BAD_TEXT, PRELOGIN_MAX_BAD_COMMANDS, preloginCommands } from './commands/prelogin.js';
import { abandonAppend, appendOverQuota, isCatenateUrlLiteral, startAppendLiteral, type AppendScan } from './commands/append.js';
import type { AppendRefusal } from './commands/catenate.js';
import { faultText, guarded } from '../util/fault.js';
import { quickAck } from '../util/tcp-socket.js';
import { clientCertOf, type ClientCert } from '../util/tls-client-cert.js';
import { LOGIN_PROXY_TTL } from '../util/login-proxy.js';
import type { LoginConn } from '../config/login-log.js';
import { ImapSessionStats, imapLogoutLine } from './logout-format.js';
import { statsEvent, statsWanted } from '../util/stats-events.js';
import { DEADLINES, LoginProgress, maxUserIpConnections, userIpText, type ConnectionSlot } from '../config/connection-limits.js';

export type SessionState = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

export interface SessionOptions {
  config: DovecotConfig;
  log: Logger;
  login: ImapLogin;
  rip: string;
  lip: string;
  /** Connection already inside TLS (imaps, or after STARTTLS). */
  secured: boolean;
  /**
   * The client is in login_trusted_networks (login-common's client->trusted):
   * plaintext logins are allowed as over TLS, and its first ID may forward
   * the real client's address (x-originating-ip …), which then replaces
   * rip/lip for logging and the auth penalty.
   */
  trusted?: boolean;
  /** Wrap the socket in TLS (STARTTLS); absent when no certificate is configured. */
  starttls?: (socket: Duplex) => Promise<Duplex>;
  /** Pre-authenticated user (tests, `sealmail imap -u`): skips LOGIN. */
  preauth?: { user: string; store: MailStore; quota?: UserQuota | null; mailPlugins?: string[]; metadata?: UserMetadata | 'disabled' | 'no-dict'; imapSieve?: ImapSieveHook | null; alert?: string };
  /** With preauth: the LOGIN a login process accepted, answered here (a mail process, server/mail-process.ts) instead of PREAUTH. */
  loginReply?: { tag: string; capabilityAsked: boolean };
  /** With preauth: the login process's session id (the mail process logs as imap(user)<pid><session>). */
  session?: string;
  /** This connection's place in the master's connection count; none = no limits (tests, `sealmail imap -u`). */
  slot?: ConnectionSlot;
}

/** Dovecot: a client that sends this many bad commands before logging in is disconnected. */
/** Dovecot's imap_max_line_length default and its APPENDLIMIT default (64 MiB). */
const APPENDLIMIT = 64 * 1024 * 1024;
/**
 * Dovecot 2.3.19's post-login CAPABILITY, in its order (checked against
 * imap with imap_quota, imap_zlib and a mail_attribute_dict); the flag says
 * whether Sealmail implements the extension (only those are announced).
 * One line each so that extensions land without touching each other.
 */
const POSTLOGIN_CAPABILITIES: Array<[string, boolean | ((s: Session) => boolean)]> = [
  ['IMAP4rev1', true],
  // RFC 9051, not in Dovecot 2.3: rev1 behaviour until the client says ENABLE IMAP4rev2
  ['IMAP4rev2', true],
  ['SASL-IR', true],
  ['LOGIN-REFERRALS', true],
  ['ID', true],
  ['ENABLE', true],
  ['IDLE', true],
  ['SORT', true],
  ['SORT=DISPLAY', true],
  ['THREAD=REFERENCES', true],
  ['THREAD=REFS', true],
  ['THREAD=ORDEREDSUBJECT', true],
  ['MULTIAPPEND', true],
  ['URL-PARTIAL', true],
  ['CATENATE', true],
  ['UNSELECT', true],
  ['CHILDREN', true],
  ['NAMESPACE', true],
  ['UIDPLUS', true],
  ['LIST-EXTENDED', true],
  ['I18NLEVEL=1', true],
  ['CONDSTORE', true],
  ['QRESYNC', true],
  ['ESEARCH', true],
  ['ESORT', true],
  ['SEARCHRES', true],
  ['WITHIN', true],
  ['CONTEXT=SEARCH', true],
  ['LIST-STATUS', true],
  ['BINARY', true],
  ['MOVE', true],
  ['SNIPPET=FUZZY', true],
  ['PREVIEW=FUZZY', true],
  ['PREVIEW', true],
  ['STATUS=SIZE', true],
  ['SAVEDATE', true],
  ['LITERAL+', true],
  // Dovecot announces it only with mailbox_list_index (its notifier for other mailboxes)
  ['NOTIFY', (s) => s.notifyAnnounced],
  ['METADATA', (s) => typeof s.metadata === 'object'],
  // Dovecot announces it only when some mailbox has special_use configured
  ['SPECIAL-USE', (s) => Object.keys(s.store?.opts.specialUse ?? {}).length > 0],
  ['COMPRESS=DEFLATE', (s) => s.mailPlugins.includes('imap_zlib')],
  ['QUOTA', true],
  // not in Dovecot 2.3 (RFC 6154 CREATE is accepted there unannounced; RFC 6855 is 2.4)
  ['CREATE-SPECIAL-USE', false],
  ['UTF8=ACCEPT', true],
];

/** Largest SETMETADATA value held in memory (Dovecot streams any size into its dict; the file dict is rewritten whole anyway). */
const METADATA_VALUE_LIMIT = 1024 * 1024;

/**
 * Before login, the most client bytes kept for passing on while a command is
 * being handled; past it the socket is paused until the command ends (the
 * rest waits in the kernel, as behind Dovecot's login input buffer).
 */
const PRELOGIN_INPUT_MAX = 1024 * 1024;

/** How long a finished connection's socket may linger for its last bytes (see end()). */
const HANGUP_GRACE_MS = 1000;

/** Dovecot's imap process: CLIENT_MAX_BAD_COMMANDS, counted while no valid command comes between. */
const MAX_BAD_COMMANDS_IN_A_ROW = 20;

export class Session {
  state: SessionState = 'not-authenticated';
  user = '';
  store: MailStore | null = null;
  /** The user's quota root (quota plugin configured for imap), enforced on APPEND/COPY. */
  quota: UserQuota | null = null;
  /** IMAPSieve (`imap_sieve` in mail_plugins with imapsieve_mailbox rules): told about APPEND/COPY/MOVE/STORE before their tagged reply. */
  imapSieve: ImapSieveHook | null = null;
  selected: Selected | null = null;
  secured: boolean;
  enabled = new Set<string>();
  /** The user's mail_plugins (userdb field, else the imap protocol's setting): imap_zlib gates COMPRESS. */
  mailPlugins: string[] = [];
  /** METADATA (RFC 5464) storage, or why Dovecot would refuse it (imap_metadata = no / no mail_attribute_dict). */
  metadata: UserMetadata | 'disabled' | 'no-dict' = 'disabled';
  private reader: CommandReader;
  private socket: Duplex;
  private queue: ReaderEvent[] = [];
  private running = false;
  private badCount = 0;
  /** The command whose tagged reply is the imap_command_finished event (util/stats-events.ts), when metrics are reported. */
  private finishing: { tag: string; name: string; t0: bigint } | null = null;
  /** STARTTLS was done (a CAPABILITY after it doesn't change the login reply). */
  tlsStarted = false;
  /** CAPABILITY before login: the login reply then lists the capabilities untagged (imap-login). */
  capabilityAskedBeforeLogin = false;
  /** imap-login's id_logged: only the first ID may forward a trusted proxy's client address. */
  idSeen = false;
  /** login-common's proxy_ttl: hops this login may still be proxied (a trusted proxy's x-proxy-ttl lowers it). */
  proxyTtl = LOGIN_PROXY_TTL;
  /** A trusted proxy's ID named the client's ports (x-originating-port, x-connected-port). */
  forwardedPorts: { rport?: number; lport?: number } = {};
  private rawWaiter: ((line: string | null) => void) | null = null;
  private rawBuf = Buffer.alloc(0);
  /**
   * Before login, the client's bytes not yet consumed by a command this
   * session handled (what detach() passes on with the connection):
   * `preInput` holds the stream from offset `preBase`, `received` counts
   * every byte, `consumed` is where the last handled command (or SASL
   * response line) ended; `inputEnds` maps each reader event to the offset
   * where its bytes end. Only bytes that came while a command is being
   * handled are kept: with none in hand, the next command to be handled
   * ends beyond everything received.
   */
  private preInput: Buffer[] = [];
  private preBase = 0;
  private received = 0;
  private consumed = 0;
  private readonly inputEnds = new WeakMap<ReaderEvent, number>();
  /** The login deadline before login, the autologout timer after it. */
  private timer: NodeJS.Timeout | null = null;
  private idleTimerArmed = false;
  private lastInput = 0;
  /** Age and LOGIN/AUTHENTICATE attempts, for imap-login's disconnect log lines. */
  private readonly progress = new LoginProgress();
  /** After a login in this process: imap(user)<pid><session>. */
  private sessionLog: Logger | null = null;
  /** in=, out= and the other counters of imap_logout_format. */
  readonly stats = new ImapSessionStats();
  private endLogged = false;
  /** Waiting for the client's next SASL response. */
  private inSasl = false;
  private closed = false;
  private readonly connectedAt = Date.now();
  /** COMPRESS=DEFLATE (RFC 4978) streams once active: responses go through deflate, client bytes through inflate. */
  private deflate: DeflateRaw | null = null;
  private inflate: InflateRaw | null = null;
  private flushPending = false;
  /** The stream our responses are corked on while input is handled (flushOutput uncorks it). */
  private corked: Writable | null = null;
  /** Streamed APPEND literal in progress. */
  literalSink: { push(b: Buffer): void; end(): void; abort(): void } | null = null;
  onLiteralStart: ((info: LiteralInfo) => Promise<AppendRefusal | null>) | null = null;
  readonly appendResults: Promise<unknown>[] = [];
  /** The APPEND whose arguments are being read (commands/append.ts). */
  appendScan: AppendScan | null = null;
  /** APPENDLIMIT: the largest message, literal or composed by CATENATE. */
  get appendLimit(): number { return APPENDLIMIT; }
  /**
   * NOTIFY (RFC 5465), Dovecot's client notify_* fields: the watch of other
   * mailboxes, and what the selected mailbox reports (counts, expunges and
   * flag changes stop without a SELECTED filter asking for them).
   */
  notify: NotifyWatch | null = null;
  private notifyCountChanges = true;
  private notifyFlagChanges = true;
  private notifyImmediateExpunges = false;
  private notifyFetchAtt: ImapArg | null = null;
  /** The UID from which MessageNew's FETCH starts (the UIDNEXT at SELECT, then after each such FETCH). */
  notifyUidnext = 0;
  private notifyFetching = false;
  /** A SELECTED filter was given: the selected mailbox is watched between commands. */
  private notifySelected = false;
  private selectedWatch: ChangeSubscription | null = null;
  private selectedWatchTimer: NodeJS.Timeout | null = null;
  private notifyTimer: NodeJS.Timeout | null = null;
  /** In IDLE: NOTIFY's changes go out as they come. */
  idling = false;

  constructor(socket: Duplex, readonly opts: SessionOptions) {
    this.socket = socket;
    this.secured = opts.secured;
    this.reader = this.newReader();
    this.onLiteralStart = (info) => startAppendLiteral(this, info);
    this.attach(socket);
  }

  private newReader(): CommandReader {
    return new CommandReader({
      maxLineLength: this.opts.config.getSize('imap_max_line_length') || 65536,
      // APPEND's message literals stream; a literal mailbox name (its first argument) is buffered like any string
      // (a CATENATE URL given as a literal is an argument too)
      streamLiteral: (info) => (info.name === 'APPEND' && info.args.length > 0 && !isCatenateUrlLiteral(info) ? (info.size > APPENDLIMIT ? 'reject' : true) : false),
      // imap-login parses every argument; the imap process skips NOOP's and CHECK's
      argsIgnored: (name) => this.state !== 'not-authenticated' && (name === 'NOOP' || name === 'CHECK'),
      bufferedLiteralLimit: (name) => (name === 'SETMETADATA' ? METADATA_VALUE_LIMIT : 0),
    });
  }

  get log(): Logger { return this.sessionLog ?? this.opts.log; }
  get config(): DovecotConfig { return this.opts.config; }

  private attach(socket: Duplex): void {
    socket.on('data', guarded((e) => this.fault(e), (d: Buffer) => {
      if (this.state === 'not-authenticated') this.keepPrelogin(d);
      else this.stats.countInput(d);
      this.onData(d);
    }));
    socket.on('end', () => this.onClose());
    socket.on('close', () => this.onClose());
    socket.on('error', () => this.onClose());
  }

  async start(): Promise<void> {
    if (!this.opts.preauth) this.startLoginDeadline();
    if (this.opts.preauth) {
      this.user = this.opts.preauth.user;
      this.store = this.opts.preauth.store;
      this.quota = this.opts.preauth.quota ?? null;
      this.imapSieve = this.opts.preauth.imapSieve ?? null;
      this.metadata = this.opts.preauth.metadata ?? 'disabled';
      this.mailPlugins = this.opts.preauth.mailPlugins ?? splitPlugins(this.config.get('mail_plugins', { protocol: 'imap' }));
      this.state = 'authenticated';
      this.touch();
      const reply = this.opts.loginReply;
      if (this.opts.preauth.alert) await this.send({ kind: 'status', status: 'OK', code: { name: 'ALERT' }, text: this.opts.preauth.alert });
      if (reply?.capabilityAsked) {
        await this.untagged([atom('CAPABILITY'), ...this.capabilities().split(' ').map(atom)]);
        await this.send({ kind: 'tagged', tag: reply.tag, status: 'OK', text: 'Logged in' });
      } else if (reply) {
        await this.send({ kind: 'tagged', tag: reply.tag, status: 'OK', code: { name: 'CAPABILITY', args: this.capabilities() }, text: 'Logged in' });
      }
      if (reply) return;
      await this.send({ kind: 'status', status: 'PREAUTH', code: { name: 'CAPABILITY', args: this.capabilities() }, text: `Logged in as ${this.user}` });
      return;
    }
    const greeting = this.config.get('login_greeting') || 'Dovecot ready.';
    await this.send({ kind: 'status', status: 'OK', code: { name: 'CAPABILITY', args: this.capabilities() }, text: greeting });
  }

  /** CAPABILITY as Dovecot orders it; before login the pre-login set. */
  capabilities(): string {
    const conf = this.config.get('imap_capability', { protocol: 'imap' });
    if (this.state === 'not-authenticated') {
      const caps = ['IMAP4rev1', 'IMAP4rev2', 'SASL-IR', 'LOGIN-REFERRALS', 'ID', 'ENABLE', 'IDLE', 'LITERAL+'];
      if (this.opts.starttls && !this.secured) caps.push('STARTTLS');
      // as Dovecot's imap-login: the LOGIN command needs PLAIN; no plaintext mechanism before TLS when disabled
      const mechs = this.plaintextDisabled() ? [] : plaintextMechanisms(this.config);
      if (!mechs.includes('PLAIN')) caps.push('LOGINDISABLED');
      caps.push(...mechs.map((m) => `AUTH=${m}`));
      return caps.join(' ');
    }
    const caps = POSTLOGIN_CAPABILITIES.filter(([c, on]) => (typeof on === 'function' ? on(this) : on) && (c !== 'QUOTA' || this.imapQuota)).map(([c]) => c).concat(`APPENDLIMIT=${APPENDLIMIT}`);
    if (conf && !conf.startsWith('+')) return conf;
    return conf ? [...caps, ...conf.slice(1).trim().split(/\s+/)].join(' ') : caps.join(' ');
  }

  /** RFC 6855 after ENABLE UTF8=ACCEPT: mailbox names travel as UTF-8; the store keeps Dovecot's mUTF-7. */
  get utf8Accept(): boolean { return this.enabled.has('UTF8=ACCEPT'); }

  /** Mailbox names as UTF-8 on the wire: UTF8=ACCEPT, or IMAP4rev2 (RFC 9051 §5.1 has no mUTF-7). */
  get utf8Names(): boolean { return this.utf8Accept || this.rev2; }

  /** A mailbox name (or LIST pattern) from the client in the store's form. */
  mailboxIn(raw: string): string { return this.utf8Names ? utf8ToMutf7(raw) : raw; }

  /** The inbox namespace's separator: `inbox<sep>child` is INBOX's child whatever the case of "inbox". */
  get inboxSep(): string { return this.store?.sep ?? '.'; }

  /** A stored (mUTF-7) mailbox name in the form this client reads. */
  mailboxOut(name: string): string {
    if (!this.utf8Names) return name;
    try { return mutf7ToUtf8(name); } catch { return name; } // not valid mUTF-7 on disk: shown as it is
  }

  /** NOTIFY is announced and watches other mailboxes with mailbox_list_index (Dovecot's condition). */
  get notifyAnnounced(): boolean { return this.config.getBool('mailbox_list_index'); }

  /** The selected mailbox's name, for NOTIFY (no STATUS about it). */
  selectedName(): string | null { return this.selected?.name ?? null; }

  /** A NOTIFY command's setting replaces the previous one (NOTIFY NONE: `spec` without filters). */
  setNotify(watch: NotifyWatch | null, spec: NotifySpec): void {
    this.notify?.close();
    this.notify = watch;
    this.notifyImmediateExpunges = spec.selectedImmediate;
    this.notifyCountChanges = spec.selectedEvents.has('MessageNew');
    this.notifyFlagChanges = spec.selectedEvents.has('FlagChange');
    this.notifyFetchAtt = spec.fetchAtt;
    this.notifySelected = spec.selectedSet;
    if (watch) watch.onDirty = () => this.notifyLater();
  }

  /**
   * With a SELECTED filter, the selected mailbox is watched from 1 s after
   * the last command on, and its changes go out as they come (Dovecot's
   * imap_client_notify_command_freed, IMAP_NOTIFY_WATCH_ADD_DELAY_MSECS);
   * expunges only with SELECTED (not -DELAYED).
   */
  private watchSelectedLater(): void {
    if (!this.notifySelected || !this.selected || this.selectedWatch || this.selectedWatchTimer || this.closed) return;
    this.selectedWatchTimer = setTimeout(() => {
      this.selectedWatchTimer = null;
      const sel = this.selected;
      if (!sel || this.running || this.closed || !this.notifySelected) return;
      this.selectedWatch = watchFolder(sel.folder.dir, () => this.pushSelectedUpdates(), 50, sel.folder.controlDir);
    }, NOTIFY_WATCH_SELECTED_DELAY_MS);
    this.selectedWatchTimer.unref();
  }

  private stopSelectedWatch(): void {
    this.selectedWatch?.close();
    this.selectedWatch = null;
    if (this.selectedWatchTimer) clearTimeout(this.selectedWatchTimer);
    this.selectedWatchTimer = null;
  }

  private pushSelectedUpdates(): void {
    const look = this.notifyChain.then(async () => {
      if (this.running || this.closed || !this.selected) return;
      await this.sendUpdates(false);
      this.flushOutput();
    });
    this.notifyChain = look.catch((e) => this.fault(e));
  }

  /** NOOP: NOTIFY's pending changes of other mailboxes now (imap_notify_flush). */
  async notifyFlush(): Promise<void> {
    if (!this.notify) return;
    await this.notifyChain;
    await this.notify.flush();
    await this.sendNotifications();
  }

  /** One look at a time: a NOOP waits for a look the timer started, so nothing it found comes after NOOP's OK. */
  private notifyChain: Promise<void> = Promise.resolve();

  private sendNotifications(): Promise<void> {
    const look = this.notifyChain.then(async () => {
      if (!this.notify?.pending) return;
      for (const r of await this.notify.collect()) await this.untagged(r);
    });
    this.notifyChain = look.catch(() => undefined);
    return look;
  }

  /**
   * Changes of other mailboxes go out NOTIFY_DELAY_MS after they came
   * (bundled, as Dovecot's notifier does), between commands or in IDLE;
   * while a command runs they wait for its end.
   */
  notifyLater(): void {
    if (this.notifyTimer || this.closed || !this.notify?.pending) return;
    this.notifyTimer = setTimeout(() => {
      this.notifyTimer = null;
      if (this.closed || (this.running && !this.idling)) return;
      this.sendNotifications().then(() => this.flushOutput(), (e) => this.fault(e));
    }, NOTIFY_DELAY_MS);
    this.notifyTimer.unref();
  }

  /** Dovecot's imap_quota plugin is loaded: QUOTA announced, GETQUOTA… known. */
  get imapQuota(): boolean {
    return this.mailPlugins.includes('imap_quota');
  }

  plaintextDisabled(): boolean {
    if (this.secured || this.opts.trusted) return false;
    if (this.opts.rip === '127.0.0.1' || this.opts.rip === '::1' || this.opts.rip === this.opts.lip) return false; // Dovecot trusts localhost
    return this.config.getBool('disable_plaintext_auth');
  }

  /**
   * imap-login's deadline: the connection is cut 3 minutes after it came,
   * whatever the client sends meanwhile (client_idle_disconnect_timeout).
   */
  private startLoginDeadline(): void {
    this.timer = setTimeout(() => {
      if (this.state !== 'not-authenticated') return;
      const sasl = this.inSasl;
      this.loginLog(sasl ? 'Inactivity during authentication' : 'Inactivity');
      void this.bye(sasl ? 'Disconnected for inactivity during authentication.' : 'Disconnected for inactivity.');
    }, DEADLINES.loginMs);
    this.timer.unref();
  }

  /**
   * The imap process's autologout: 30 minutes without input after login
   * (restarted by every byte, and by IDLE's keepalive: see keepAlive()).
   */
  private touch(): void {
    if (this.state === 'not-authenticated' || this.closed) return;
    this.lastInput = Date.now();
    // the login deadline is replaced once; after that the same timer restarts (no new timer per packet)
    if (this.idleTimerArmed && this.timer) { this.timer.refresh(); return; }
    if (this.timer) clearTimeout(this.timer);
    this.idleTimerArmed = true;
    this.timer = setTimeout(() => {
      this.logSessionEnd(`Inactivity - no input for ${Math.round((Date.now() - this.lastInput) / 1000)} secs`);
      void this.bye('Disconnected for inactivity.');
    }, DEADLINES.idleMs);
    this.timer.unref();
  }

  /** IDLE's "* OK Still here" went out: Dovecot lets an idling client stay (cmd-idle.c keepalive_timeout). */
  keepAlive(): void { this.touch(); }

  /**
   * A pre-login disconnect as imap-login logs it: the reason, why (no auth
   * attempts / unfinished SASL / failed attempts, with the seconds), the
   * connection (client_get_extra_disconnect_reason + login_log_format).
   */
  loginLog(reason: string): void {
    this.progress.logDisconnect(this.opts.login.log, reason, this.inSasl, this.loginConn());
  }

  /** The connection as the login process's log lines name it (config/login-log.ts). */
  loginConn(): LoginConn {
    return { config: this.config, service: 'imap', rip: this.opts.rip, lip: this.opts.lip, tls: this.secured, trusted: this.opts.trusted, clientCert: this.clientCert };
  }

  /** The TLS client certificate's worth (util/tls-client-cert.ts); undefined without TLS in this process. */
  get clientCert(): ClientCert | undefined { return clientCertOf(this.socket); }

  /** This connection's login session id (session=<…>), passed to the mail process with the login. */
  get loginSession(): string { return this.progress.session(this.loginConn()); }

  /** The passdb refused `user`: the line logged when the connection ends names it. */
  authFailed(user: string, temp: boolean): void { this.progress.failed(user, temp); }

  /** The passdb accepted `user`, whose login was proxied or referred and did not succeed (`proxyAuth`: the backend refused it). */
  authSucceededElsewhere(user: string, proxyAuth = false): void { this.progress.succeeded(user, proxyAuth); }

  /** No disconnect line for this connection (see LoginProgress.silence). */
  silenceLoginLog(): void { this.progress.silence(); }

  /** The login went no further than the login process (a refusal after the passdb's OK): its last line. */
  logLoginRefused(reason: string, user: string, mech: string): void {
    this.progress.logRefused(this.opts.login.log, this.loginConn(), reason, user, mech);
  }

  /** A login process handed the session to mail process `mpid` (0: unknown): imap-login's `Login:` line. */
  logHandedOff(user: string, mech: string, mpid: number): void {
    this.progress.logLogin(this.opts.login.log, this.loginConn(), user, mech, mpid);
  }

  /**
   * The imap process's last line of a session: `Disconnected: <reason>
   * <imap_logout_format>` (imap-client.c client_destroy + client_stats), once.
   */
  logSessionEnd(reason: string): void {
    if (this.endLogged || !this.user) return;
    this.endLogged = true;
    this.log.info(`Disconnected: ${reason} ${imapLogoutLine(this.config, this.stats)}`);
  }

  /** The master dropped this connection to make room (login service full): imap-login's client_destroy_oldest. */
  evict(): void {
    if (this.closed || this.state !== 'not-authenticated') return;
    this.loginLog('Connection queue full');
    void this.bye('Connection queue full');
  }

  /** sealadm kick (doveadm kick: SIGTERM to Dovecot's imap process): clients_destroy_all's BYE and log line. */
  kick(): void {
    if (this.closed) return;
    this.logSessionEnd('Server shutting down.');
    void this.bye('Server shutting down.').catch(() => undefined);
  }

  /**
   * After the passdb accepted a login: the master's verdict on the counts.
   * Refused as imap-login does: mail_max_userip_connections with
   * `NO [LIMIT] …` and the connection closed; a full imap service closes the
   * connection without a reply (Dovecot: after its 10 s wait for a free
   * process, "Internal login failure" in the log).
   */
  async admitLogin(tag: string, user: string, mech: string): Promise<boolean> {
    const verdict = this.opts.slot ? await this.opts.slot.admit(user) : 'ok';
    if (verdict === 'ok') return true;
    if (verdict === 'userip') {
      const text = userIpText(maxUserIpConnections(this.config, 'imap', { rip: this.opts.rip, lip: this.opts.lip }));
      this.progress.logRefused(this.opts.login.log, this.loginConn(), text, user, mech);
      await this.send({ kind: 'tagged', tag, status: 'NO', code: { name: 'LIMIT' }, text });
    } else {
      this.opts.login.log.error(`master(imap): destination service { process_limit } reached (rip=${this.opts.rip})`);
      this.progress.logRefused(this.opts.login.log, this.loginConn(), 'Internal login failure', user, mech);
    }
    this.end();
    return false;
  }

  private onData(d: Buffer): void {
    this.touch();
    if (this.rawWaiter) {
      this.rawBuf = Buffer.concat([this.rawBuf, d]);
      const nl = this.rawBuf.indexOf(0x0a);
      if (nl < 0) {
        if (this.rawBuf.length > 65536) this.bye('Too long line').catch((e) => this.fault(e));
        else quickAck(this.socket);
        return;
      }
      const line = this.rawBuf.subarray(0, nl).toString('utf8').replace(/\r$/, '');
      const rest = this.rawBuf.subarray(nl + 1);
      this.rawBuf = Buffer.alloc(0);
      this.consumedTo(this.received - rest.length);
      const w = this.rawWaiter;
      this.rawWaiter = null;
      this.inSasl = false;
      w(line);
      if (rest.length) this.onData(rest);
      return;
    }
    if (this.state === 'not-authenticated') this.readPrelogin(d);
    else for (const ev of this.reader.push(d)) this.queue.push(ev);
    // a client that pipelines without reading our answers can't make us buffer without bound
    if (this.queue.length > 200) { this.socket.pause(); this.inflate?.pause(); }
    this.pump().catch((e) => this.fault(e));
  }

  /**
   * Pre-login input, a line at a time, so that each event is known to end
   * where its line ends in the stream (`d` is the stream's tail: it ends at
   * `received`).
   */
  private readPrelogin(d: Buffer): void {
    for (let from = 0; from < d.length;) {
      const lf = d.indexOf(0x0a, from);
      const to = lf < 0 ? d.length : lf + 1;
      const end = this.received - (d.length - to);
      for (const ev of this.reader.push(d.subarray(from, to))) { this.inputEnds.set(ev, end); this.queue.push(ev); }
      from = to;
    }
  }

  /** Pre-login bytes as they come (see preInput), within PRELOGIN_INPUT_MAX. */
  private keepPrelogin(d: Buffer): void {
    if (!this.running) { this.preInput = []; this.preBase = this.consumed = this.received; }
    this.preInput.push(d);
    this.received += d.length;
    if (this.running && this.received - this.consumed > PRELOGIN_INPUT_MAX) this.socket.pause();
  }

  /** Pre-login input up to stream offset `end` was handled: only what follows is kept. */
  private consumedTo(end: number): void {
    if (this.state !== 'not-authenticated') { this.preInput = []; return; } // logged in here: nothing to pass on
    if (end <= this.consumed) return;
    this.consumed = end;
    while (this.preInput.length && this.preBase + this.preInput[0].length <= end) this.preBase += this.preInput.shift()!.length;
  }

  /**
   * The session's fault boundary: an exception no command handler caught
   * (a reader event, a write) is logged and ends this session alone, with
   * Dovecot's internal-error BYE when the socket can still take it.
   */
  private fault(e: unknown): void {
    this.log.error(`Internal error: ${faultText(e)}`);
    if (this.closed) return;
    // a BYE that went out ended the session (its socket closes after the flush); one that failed leaves it to us
    this.bye('Internal error occurred. Refer to server log for more information.').catch(() => undefined).finally(() => { if (!this.closed) { this.socket.destroy(); this.onClose(); } });
  }

  /** Next raw line from the client (IDLE's DONE, AUTHENTICATE's responses); null when the peer went away. */
  readRawLine(): Promise<string | null> {
    if (this.closed) return Promise.resolve(null);
    this.inSasl = this.state === 'not-authenticated'; // before login only AUTHENTICATE reads raw lines
    return new Promise((res) => { this.rawWaiter = res; });
  }

  /**
   * A login process gives the connection away after the login (to the mail
   * process it proxies to): no more reading, no timers, no disconnect line.
   * `input`: what the client sent after the command being handled (the
   * LOGIN / AUTHENTICATE), pipelined before its reply, for the mail process
   * to read first (imap-login passes its input buffer with the fd); the
   * socket is paused so that nothing more is read until it is passed on.
   */
  detach(): { stream: Duplex; input: Buffer } {
    this.flushOutput();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const ev of ['data', 'end', 'close', 'error']) this.socket.removeAllListeners(ev);
    this.socket.on('error', () => undefined);
    this.socket.pause();
    const input = Buffer.concat(this.preInput).subarray(this.consumed - this.preBase);
    this.preInput = [];
    this.queue.length = 0;
    return { stream: this.socket, input };
  }

  private onClose(): void {
    if (this.closed) return;
    if (this.state === 'not-authenticated') this.loginLog('Connection closed');
    else this.logSessionEnd('Connection closed');
    this.closed = true;
    this.selected?.release();
    this.notify?.close();
    this.stopSelectedWatch();
    if (this.notifyTimer) clearTimeout(this.notifyTimer);
    if (this.timer) clearTimeout(this.timer);
    this.opts.slot?.release();
    this.literalSink?.abort();
    this.rawWaiter?.(null);
    this.rawWaiter = null;
    this.state = 'logout';
    this.inflate?.destroy();
    if (this.deflate && !this.deflate.writableEnded) this.deflate.destroy();
    // Dovecot runs `mailbox { autoexpunge }` when the user's session ends
    this.store?.autoexpunge().catch((e: Error) => this.log.error(`autoexpunge: ${e.message}`));
  }

  get isClosed(): boolean { return this.closed; }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length && !this.closed) {
        const ev = this.queue.shift()!;
        const end = this.inputEnds.get(ev);
        if (end !== undefined) this.consumedTo(end);
        if (this.queue.length < 50) { this.socket.resume(); this.inflate?.resume(); }
        this.cork();
        // a command starts: NOTIFY's watch of the selected mailbox stops, a look in progress ends first
        this.stopSelectedWatch();
        await this.notifyChain;
        await this.handle(ev);
        // a command's response leaves when it is complete, not behind the next pipelined command's work
        if (ev.type !== 'literal-data') this.uncork();
      }
    } finally {
      this.running = false;
      // a pause for PRELOGIN_INPUT_MAX ends with the command (the queue is empty: the pause above doesn't apply)
      if (this.state === 'not-authenticated' && !this.closed) this.socket.resume();
      this.notifyLater();
      this.watchSelectedLater();
      // all input so far handled: the responses leave together, and our ACK of the input now
      this.flushOutput();
    }
  }

  private async handle(ev: ReaderEvent): Promise<void> {
    switch (ev.type) {
      case 'continue': await this.send({ kind: 'continue', text: 'OK' }); return;
      case 'bye': await this.bye(ev.text); return;
      case 'error':
        abandonAppend(this); // an APPEND whose line failed to parse saves nothing more
        if (this.state === 'not-authenticated') {
          // imap-login: a parser error is a BAD with the parser's text; a bad tag or command name is invalid
          if (ev.where === 'args') await this.send({ kind: 'tagged', tag: ev.tag ?? '*', status: 'BAD', text: ev.reason });
          else await this.preloginInvalid(ev.where === 'tag' ? '*' : ev.tag ?? '*');
          return;
        }
        // an argument syntax error is the command's own BAD: Dovecot adds the timing suffix, and counts the command
        if (statsWanted() && ev.tag !== null) this.finishing = { tag: ev.tag, name: ev.name !== null && Object.hasOwn(COMMANDS, ev.name) ? ev.name : 'unknown', t0: process.hrtime.bigint() };
        await this.badCommand(ev.tag, ev.where === 'tag' ? badText(ev) : timed(badText(ev), process.hrtime.bigint()));
        return;
      case 'literal-start':
        // Dovecot tests quota before it invites the literal: NO [OVERQUOTA] instead of `+ OK`
        if (ev.info.sync && this.quota && await appendOverQuota(this, ev.info) && this.reader.decisionPending) {
          this.reader.rejectLiteral();
          abandonAppend(this);
          await this.send({ kind: 'tagged', tag: ev.info.tag, status: 'NO', code: { name: 'OVERQUOTA' }, text: timed(this.quota.exceededMessage(), process.hrtime.bigint()) });
          return;
        }
        {
          const t0 = process.hrtime.bigint();
          const refusal = await this.onLiteralStart?.(ev.info);
          // the command failed already (a CATENATE part): its reply instead of an invitation, as Dovecot does
          if (refusal && this.reader.decisionPending) {
            this.reader.rejectLiteral();
            this.literalSink = null;
            abandonAppend(this);
            const text = timed(refusal.text, t0);
            await (refusal.status === 'BAD' ? this.badCommand(ev.info.tag, text) : this.send({ kind: 'tagged', tag: ev.info.tag, status: 'NO', code: refusal.code, text }));
            return;
          }
        }
        if (!this.literalSink) { // APPEND not possible here (state): swallow the data
          this.literalSink = { push: () => undefined, end: () => undefined, abort: () => undefined };
        }
        if (ev.info.sync) await this.send({ kind: 'continue', text: 'OK' });
        return;
      case 'literal-data': this.literalSink?.push(ev.chunk); return;
      case 'literal-end': this.literalSink?.end(); this.literalSink = null; return;
      case 'literal-aborted': this.literalSink?.abort(); this.literalSink = null; return;
      case 'literal-rejected':
        abandonAppend(this);
        await this.send({ kind: 'tagged', tag: ev.info.tag, status: 'NO', code: { name: 'TOOBIG' }, text: 'Mail size is larger than the maximum size allowed by server configuration' });
        return;
      case 'command':
        await this.command(ev.tag, ev.name, ev.args);
        return;
    }
  }

  private async badCommand(tag: string | null, text: string): Promise<void> {
    await this.send(tag === null ? { kind: 'status', status: 'BAD', text } : { kind: 'tagged', tag, status: 'BAD', text });
    // the imap process gives up on a client after 20 invalid commands in a row (its BAD is still sent)
    if (++this.badCount >= MAX_BAD_COMMANDS_IN_A_ROW) await this.bye('Too many invalid IMAP commands.');
  }

  /** An invalid command before login: BAD, and the third one ends the connection instead (imap-login). */
  private async preloginInvalid(tag: string): Promise<void> {
    if (++this.badCount >= PRELOGIN_MAX_BAD_COMMANDS) { this.loginLog('Too many invalid commands'); await this.bye('Too many invalid IMAP commands.'); return; }
    await this.send({ kind: 'tagged', tag, status: 'BAD', text: PRELOGIN_BAD_TEXT });
  }

  /** A command before login, answered as Dovecot's imap-login process does (commands/prelogin.ts). */
  private async preloginCommand(tag: string, name: string, args: ImapArg[]): Promise<void> {
    const handler = Object.hasOwn(preloginCommands, name) ? preloginCommands[name] : undefined;
    if (handler && (name === 'LOGIN' || name === 'AUTHENTICATE') && args.length) {
      this.progress.attempt(name === 'LOGIN' ? 'PLAIN' : args[0].type === 'atom' ? args[0].value.toUpperCase() : '');
    }
    if (!handler) {
      // someone typing `login user pass` without a tag gets told how IMAP works, as by Dovecot
      if (tag.toUpperCase() === 'LOGIN') {
        await this.send({ kind: 'tagged', tag, status: 'BAD', text: 'First parameter in line is IMAP\'s command tag, not the command name. Add that before the command, like: a login user pass' });
      } else await this.preloginInvalid(tag);
      return;
    }
    const ctx: CommandContext = {
      tag, name, args, session: this,
      ok: (text, code) => this.send({ kind: 'tagged', tag, status: 'OK', code, text }),
      no: (text, code) => this.send({ kind: 'tagged', tag, status: 'NO', code, text }),
      bad: (text) => this.send({ kind: 'tagged', tag, status: 'BAD', text }),
    };
    try {
      if (await handler(ctx) === 'invalid') await this.preloginInvalid(tag);
    } catch (e) {
      this.log.error(`${name} failed: ${(e as Error).message}`);
      if (!this.closed) await this.bye('Internal error occurred. Refer to server log for more information.');
    }
  }

  /** The login succeeded: the session belongs to the user now. */
  loggedIn(r: Extract<LoginResult, { ok: true }>, mech: string): void {
    this.user = r.user;
    this.store = r.store;
    this.quota = r.quota;
    this.imapSieve = r.imapSieve;
    this.mailPlugins = r.mailPlugins;
    this.metadata = r.metadata;
    this.state = 'authenticated';
    this.badCount = 0; // Dovecot's imap process starts its own count
    this.touch(); // the login deadline gives way to autologout
    // login and session in one process: imap-login's line, then the session's lines as the imap process's
    this.progress.logLogin(this.opts.login.log, this.loginConn(), r.user, mech, process.pid);
    this.sessionLog = Logger.forUser('imap', r.user, this.loginSession);
  }

  private async command(tag: string, name: string, args: ImapArg[]): Promise<void> {
    if (this.state === 'not-authenticated') return this.preloginCommand(tag, name, args);
    const cmd = COMMANDS[name];
    const t0 = process.hrtime.bigint();
    // Dovecot's cmd_name of a command it does not know is "unknown"
    if (statsWanted()) this.finishing = { tag, name: cmd && (!cmd.enabled || cmd.enabled(this)) ? name : 'unknown', t0 };
    if (!cmd || (cmd.enabled && !cmd.enabled(this))) {
      await this.badCommand(tag, timed(`Error in IMAP command ${name}: Unknown command`, t0));
      return;
    }
    if (!cmd.states.includes(this.state)) {
      await this.badCommand(tag, timed('No mailbox selected.', t0));
      return;
    }
    const bads = this.badCount;
    const ctx: CommandContext = {
      tag, name, args, session: this,
      ok: (text, code) => this.send({ kind: 'tagged', tag, status: 'OK', code, text: timed(text, t0) }),
      no: (text, code) => this.send({ kind: 'tagged', tag, status: 'NO', code, text: code?.name === 'AUTHENTICATIONFAILED' || code?.name === 'UNAVAILABLE' ? text : timed(text, t0) }),
      // a command's own BAD carries the timing suffix like its OK/NO (Dovecot); state errors don't
      bad: (text) => this.badCommand(tag, timed(text, t0)),
    };
    try {
      await cmd.run(ctx);
      if (this.badCount === bads) this.badCount = 0; // "in a row"
    } catch (e) {
      this.log.error(`${name} failed: ${(e as Error).message}`);
      if (!this.closed) await ctx.no('Internal error occurred. Refer to server log for more information.', { name: 'SERVERBUG' });
    }
  }

  /** Write one response (bodies streamed), honouring socket backpressure. */
  async send(r: Response): Promise<void> {
    if (this.closed) return;
    if (r.kind === 'tagged' && this.finishing?.tag === r.tag) {
      statsEvent('imap_command_finished', { cmd_name: this.finishing.name, tagged_reply_state: r.status, user: this.user ?? '' }, this.finishing.t0);
      this.finishing = null;
    }
    await writeResponse((chunk) => this.write(chunk), r);
    // a continuation request is waited for by the client: it never waits in the cork
    if (r.kind === 'continue') this.flushOutput();
  }

  /**
   * Responses to the input being handled are corked (Dovecot corks its
   * ostream the same way): the untagged lines and the tagged reply of a
   * command leave in one write, one TCP segment where they fit, instead of
   * one small segment each, which a client's delayed ACK would hold up.
   */
  private cork(): void {
    if (this.corked || this.closed) return;
    this.corked = this.deflate ?? this.socket;
    this.corked.cork();
  }

  /**
   * What was written leaves now; then TCP_QUICKACK (tcp-socket.ts), as
   * Dovecot sets it on every uncork: what the client sent is ACKed at once,
   * so a client holding its next small write for that ACK (Nagle: imaplib
   * sends an APPEND literal and its CRLF separately) never waits for the
   * delayed-ACK timer.
   */
  private flushOutput(): void {
    this.uncork();
    quickAck(this.socket);
  }

  private uncork(): void {
    const out = this.corked;
    this.corked = null;
    if (out) while (out.writableCorked > 0) out.uncork();
  }

  /** The client's and this end's TCP ports (as a trusted proxy's ID named them, else the socket's). */
  get ports(): { rport: number; lport: number } {
    const sock = this.socket as Partial<Socket>;
    return { rport: this.forwardedPorts.rport ?? sock.remotePort ?? 0, lport: this.forwardedPorts.lport ?? sock.localPort ?? 0 };
  }

  /** Lines composed elsewhere (a login proxy forwarding its backend's replies), as they are. */
  writeRaw(text: string): Promise<void> | void { return this.write(Buffer.from(text, 'utf8')); }

  /** Bytes written to the client, before and after login (a login proxy's log line counts them). */
  bytesOut = 0;

  private write(chunk: Buffer): Promise<void> | void {
    if (this.closed) return;
    this.bytesOut += chunk.length;
    const out: Writable = this.deflate ?? this.socket;
    if (this.state !== 'not-authenticated') this.stats.output += chunk.length;
    if (out.write(chunk)) { this.scheduleFlush(); return; }
    // a big response streams: what is corked leaves before we wait for 'drain'
    this.flushOutput();
    return new Promise((res) => {
      const done = () => { out.off('drain', done); this.socket.off('close', done); this.scheduleFlush(); res(); };
      out.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /**
   * Compressed output leaves with a Z_SYNC_FLUSH once the writes of this
   * turn of the event loop are done (Dovecot flushes after each batch), so a
   * response never waits in the compressor; a flush is deferred while a
   * writer waits for drain (that writer schedules it again).
   */
  private scheduleFlush(): void {
    if (!this.deflate || this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => {
      this.flushPending = false;
      const d = this.deflate;
      if (d && !this.closed && !d.writableEnded && !d.writableNeedDrain) d.flush(zc.Z_SYNC_FLUSH);
    });
  }

  get compressed(): boolean { return this.deflate !== null; }

  /**
   * COMPRESS DEFLATE (RFC 4978), after its tagged OK went out uncompressed:
   * both directions are raw deflate from here on, over TLS too (the socket
   * may be the TLS wrapper). The reader starts afresh as after STARTTLS.
   */
  startCompression(level: number): void {
    this.flushOutput(); // its tagged OK, uncompressed
    const raw = this.socket;
    const inflate = createInflateRaw();
    const deflate = createDeflateRaw({ level });
    raw.removeAllListeners('data');
    raw.on('data', (d: Buffer) => inflate.write(d));
    inflate.on('data', guarded((e) => this.fault(e), (d: Buffer) => this.onData(d)));
    const broken = (e: Error) => {
      this.log.info(`Disconnected: compressed stream broken: ${e.message}`);
      raw.destroy();
      this.onClose();
    };
    inflate.on('error', broken);
    deflate.on('error', broken);
    deflate.pipe(raw);
    this.inflate = inflate;
    this.deflate = deflate;
    this.queue.length = 0;
    this.reader = this.newReader();
  }

  async untagged(values: ImapValue[]): Promise<void> { await this.send({ kind: 'data', values }); }

  /** Already-encoded response bytes (batched small responses of a big FETCH). */
  async sendRaw(bytes: Buffer): Promise<void> {
    if (this.closed) return;
    await this.write(bytes);
  }

  /**
   * Tell the client about changes to the selected mailbox. With QRESYNC the
   * new HIGHESTMODSEQ may follow (Dovecot's imap_sync_send_highestmodseq):
   * returned for the tagged reply when `tagged`, else sent untagged. `uidCommand`:
   * the end of a UID command (its expunges may be announced; updates name the UID).
   */
  async sendUpdates(allowExpunge: boolean, quiet?: Set<number>, tagged = false, uidCommand = false): Promise<ResponseCode | undefined> {
    if (!this.selected || this.notifyFetching) return undefined;
    const sel = this.selected;
    // NOTIFY with a SELECTED filter: expunges go out at the end of every command
    const all: Update[] = await sel.sync(allowExpunge || this.notifyImmediateExpunges, quiet, this.qresync);
    // NOTIFY without MessageNew/FlagChange for the selected mailbox: those updates are not sent (Dovecot's imap-sync.c)
    const ups = all.filter((u) => (u.kind === 'flags' ? this.notifyFlagChanges : this.notifyCountChanges));
    // keywords another session created are announced before any update carries them (Dovecot's imap_sync_init)
    await announceMailboxKeywords(this, sel, keywordsIn(ups.map((u) => (u.kind === 'flags' ? u.flags : []))));
    // RFC 5267 contexts: expunged matches are reported before anything else of this sync
    if (sel.searchUpdates.size) await sendExpungedMatches(this, sel);
    for (const u of ups) {
      if (u.kind === 'expunge') await this.untagged([num(u.seq), atom('EXPUNGE')]);
      else if (u.kind === 'vanished') await this.untagged([atom('VANISHED'), atom(uidSetText(u.uids))]);
      else if (u.kind === 'exists') await this.untagged([num(u.count), atom('EXISTS')]);
      else if (u.kind === 'recent') { if (!this.rev2) await this.untagged([num(u.count), atom('RECENT')]); }
      else {
        const modseq = this.condstore ? [atom('MODSEQ'), list([num(u.modseq)])] : [];
        if (this.condstore) this.noteModseq(u.modseq);
        // after a UID command the updates carry the UID too, as its own FETCH replies do
        await this.untagged([num(u.seq), atom('FETCH'), list([...(this.qresync || uidCommand ? [atom('UID'), num(u.uid)] : []), ...modseq, atom('FLAGS'), list(u.flags.map(atom))])]);
      }
    }
    // …and what flag changes and new messages moved in or out, after EXISTS/RECENT
    if (sel.searchUpdates.size) await sendChangedMatches(this, sel);
    if (this.notifyFetchAtt && ups.some((u) => u.kind === 'exists')) await this.notifyNewMessages(this.notifyFetchAtt);
    if (!this.qresync) return undefined;
    const code = this.highestModseqCode(sel.delayedExpunges);
    if (code && !tagged) { await this.send({ kind: 'status', status: 'OK', code, text: 'Highest' }); return undefined; }
    return code;
  }

  /** NOTIFY's MessageNew fetch-att: the messages new since the last time FETCHed untagged (imap_client_notify_newmails). */
  private async notifyNewMessages(att: ImapArg): Promise<void> {
    const sel = this.selected!;
    const to = sel.folder.uidNext - 1;
    const from = this.notifyUidnext || 1;
    this.notifyUidnext = sel.folder.uidNext;
    if (from > to) return;
    this.notifyFetching = true;
    try { await fetchNewForNotify(this, from, to, att); } finally { this.notifyFetching = false; }
  }

  /** RFC 7162 CONDSTORE is on (ENABLEd, or by the first command that used a modseq). */
  get condstore(): boolean { return this.enabled.has('CONDSTORE') || this.enabled.has('QRESYNC'); }
  get qresync(): boolean { return this.enabled.has('QRESYNC'); }
  /** RFC 9051 after ENABLE IMAP4rev2: no \Recent, no RECENT, SEARCH answers with ESEARCH, SELECT sends LIST. */
  get rev2(): boolean { return this.enabled.has('IMAP4rev2'); }
  /** The highest MODSEQ sent in a FETCH response since the last sync (Dovecot's highest_fetch_modseq). */
  private fetchModseq = 0;
  /** HIGHESTMODSEQ as of the last sync that announced everything (Dovecot's sync_last_full_modseq). */
  lastFullModseq = 0;

  noteModseq(n: number): void { if (n > this.fetchModseq) this.fetchModseq = n; }

  /**
   * After a sync: [HIGHESTMODSEQ] when VANISHED/EXISTS moved it beyond what the FETCH
   * responses showed; with expunges still to announce, the value from before them.
   */
  private highestModseqCode(delayed: boolean): ResponseCode | undefined {
    const h = this.selected!.folder.highestModseq;
    let send = 0;
    if (delayed && this.fetchModseq > this.lastFullModseq) send = this.lastFullModseq;
    else if (!delayed && h > this.lastFullModseq && h > this.fetchModseq) send = h;
    if (!delayed) this.lastFullModseq = h;
    this.fetchModseq = 0;
    return send ? { name: 'HIGHESTMODSEQ', args: [num(send)] } : undefined;
  }

  /** RFC 7162 §3.1: the first CONDSTORE-using command enables it; a selected mailbox's HIGHESTMODSEQ follows. */
  async enableCondstore(): Promise<void> {
    if (this.condstore) return;
    this.enabled.add('CONDSTORE');
    if (this.selected) {
      await this.selected.folder.trackModseqs();
      this.lastFullModseq = this.selected.folder.highestModseq;
      await this.send({ kind: 'status', status: 'OK', code: { name: 'HIGHESTMODSEQ', args: [num(this.selected.folder.highestModseq)] }, text: 'Highest' });
    }
  }

  async bye(text: string): Promise<void> {
    if (this.closed) return;
    await this.send({ kind: 'status', status: 'BYE', text });
    this.end();
  }

  /**
   * Our side is done: the socket is ended and, a moment later, destroyed
   * whether or not the client closed its side (Dovecot closes the fd at
   * once), so a client that neither reads nor closes cannot hold it.
   */
  end(): void {
    this.flushOutput();
    this.state = 'logout';
    // a compressed stream is finished (Z_FINISH) and then ends the socket through the pipe
    if (this.deflate) this.deflate.end(); else this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), HANGUP_GRACE_MS).unref();
    this.onClose();
  }

  /** STARTTLS: swap the socket for its TLS wrapper; the reader starts afresh (RFC 3501 §6.2.1). */
  async upgradeTls(): Promise<void> {
    if (!this.opts.starttls) throw new Error('no TLS configured');
    this.flushOutput(); // its tagged OK, in plain text before the handshake
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.queue.length = 0;
    // what came before the handshake is not carried into TLS (nor passed on at login)
    this.preInput = [];
    this.preBase = this.consumed = this.received;
    let tls: Duplex;
    try {
      tls = await this.opts.starttls(this.socket);
    } catch (e) {
      // a failed handshake ends this connection only, as in imap-login (the socket is already destroyed)
      this.progress.logDisconnect(this.opts.login.log, '', false, { ...this.loginConn(), tlsError: (e as Error).message });
      this.socket.destroy();
      this.onClose();
      return;
    }
    this.socket = tls;
    this.secured = true;
    this.tlsStarted = true;
    this.reader = this.newReader();
    this.attach(tls);
  }
}

/** A UID set in Dovecot's compressed form ("2,4:6"). */
export function uidSetText(uids: number[]): string {
  return formatSequenceSet(normalizeSequenceSet(uids.map((u) => ({ from: u, to: u })), 0));
}

function timed(text: string, t0: bigint): string {
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return `${text.replace(/\.$/, '')} (${secs.toFixed(3)} + 0.000 secs).`;
}
