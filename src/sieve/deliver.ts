/**
 * Sieve at delivery time, as Pigeonhole's LMTP/LDA plugin runs it: the
 * `sieve_before`, `sieve_before2`, ... scripts (files, or directories whose
 * `*.sieve` files run in byte order of their names), then the user's active
 * script (`sieve = file:~/sieve;active=~/.dovecot.sieve`, `sieve_default`
 * when there is none), then `sieve_after*`. The next script runs only while
 * keep (implicit or explicit) is in effect; a script that fails to compile or
 * run ends the sequence with an implicit keep, the error logged, and the
 * actions of the scripts before it kept (Pigeonhole's multiscript rules).
 * Compiled scripts are cached in memory by path+mtime+size; Pigeonhole
 * writes .svbin files, Sealmail does not need them (and never writes them).
 * `include` (RFC 6609) finds personal scripts in the user's script directory
 * and global ones in `sieve_global` (or the older `sieve_global_dir`); a
 * missing one without `:optional` is a compile error, as in Pigeonhole.
 * Actions are returned, not performed: the LMTP layer stores, redirects and
 * sends (vacation replies and enotify mailto notifications are composed
 * here, sending is the caller's). Which extensions a script may use follows
 * `sieve_extensions`; administrator scripts (sieve_before/sieve_after) may
 * also use `sieve_global_extensions`. RFC 5183 environment items are those
 * of Pigeonhole's LMTP/LDA plugin ("MDA", "during"; environment.ts). RFC 7352 duplicate checks read the
 * user's `~/.dovecot.lda-dupes`; the ids are recorded there only after the
 * message was delivered (SieveOutcome.commit), as Pigeonhole marks them
 * when the result executed successfully. RFC 5293 editheader: a keep,
 * fileinto or redirect whose message was edited carries the edited header
 * block (`header`); the caller joins it to the message body, which starts at
 * SieveOutcome.bodyStart of the message it passed in.
 */
import { promises as fs } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import type { DovecotConfig } from '../config/settings.js';
import type { Fields } from '../auth/databases.js';
import { expandVars } from '../config/vars.js';
import { hostname } from 'node:os';
import { parseSieveAddress } from './address.js';
import { Logger, formatTimestamp } from '../log/logger.js';
import { compileScript, SieveCompileError, type CompiledScript, type CompileOptions } from './compile.js';
import { runScript, type SieveAction, type SieveEnvelope } from './interpreter.js';
import { parseMessage, type MessageSource } from './message.js';
import { vacationSuppressed, vacationDue, composeVacation } from './vacation.js';
import { extensionSwitches } from './extensions.js';
import { environmentItems } from './environment.js';
import { composeNotification, autoSubmitted } from './notify.js';
import { duplicateExists, markDuplicates } from './duplicate.js';

export interface SieveOutcomeAction {
  type: 'keep' | 'fileinto' | 'discard' | 'redirect' | 'vacation' | 'reject' | 'notify';
  mailbox?: string; flags?: string[]; create?: boolean; address?: string; reply?: Buffer;
  /** notify: the envelope sender ('' for <>) and recipients of `reply`. */
  mailFrom?: string; rcpts?: string[];
  /** keep/fileinto/redirect of an edited message: its header block, the empty line included (the body is unchanged). */
  header?: Buffer;
}
export interface SieveOutcome {
  actions: SieveOutcomeAction[]; errors: string[];
  /** Where the body (after the header's empty line) starts in the message given to runSieveForDelivery. */
  bodyStart: number;
  /** Call once the message is delivered: records the RFC 7352 duplicate ids of the run. */
  commit: () => Promise<void>;
}

export interface SieveUser { username: string; home: string; fields: Fields }
export interface DeliverOptions {
  /** For `mailboxexists`; without it every mailbox counts as missing. */
  mailboxExists?: (name: string) => Promise<boolean>;
  protocol?: string;
  now?: Date;
}

interface CacheEntry { mtimeMs: number; size: number; result: CompiledScript | SieveCompileError }
const cache = new Map<string, CacheEntry>();

/** Compile a script file, reusing the last compilation while the file is unchanged (per set of context extensions). */
export async function loadScript(path: string, opts: CompileOptions = {}): Promise<CompiledScript> {
  const st = await fs.stat(path);
  const key = opts.extensions?.length || opts.enabled ? `${path}\0${[...opts.extensions ?? []].sort().join(' ')}\0${opts.enabled?.join(' ') ?? ''}` : path;
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) {
    if (hit.result instanceof SieveCompileError) throw hit.result;
    return hit.result;
  }
  const src = await fs.readFile(path, 'utf8');
  const name = path.replace(/^.*\//, '').replace(/\.sieve$/, '');
  let result: CompiledScript | SieveCompileError;
  try { result = compileScript(src, name, opts); } catch (e) { if (!(e instanceof SieveCompileError)) throw e; result = e; }
  cache.set(key, { mtimeMs: st.mtimeMs, size: st.size, result });
  if (result instanceof SieveCompileError) throw result;
  return result;
}

/** `file:PATH;active=PATH` / bare PATH (Pigeonhole's script location syntax). */
export function parseLocation(spec: string, user: SieveUser): { path: string; active?: string; options: Record<string, string> } {
  const at = user.username.indexOf('@');
  const vars = { u: user.username, user: user.username, n: at < 0 ? user.username : user.username.slice(0, at), d: at < 0 ? '' : user.username.slice(at + 1), h: user.home, home: user.home };
  const home = (p: string) => expandVars(p.startsWith('~/') ? join(user.home, p.slice(2)) : p === '~' ? user.home : p, vars);
  let s = spec.trim();
  const m = /^([a-z]+):/.exec(s);
  if (m) s = s.slice(m[0].length);
  const [p, ...opts] = s.split(';');
  const options: Record<string, string> = {};
  for (const o of opts) { const i = o.indexOf('='); if (i > 0) options[o.slice(0, i)] = home(o.slice(i + 1)); }
  return { path: home(p), active: options.active, options };
}

async function locationScripts(spec: string, user: SieveUser): Promise<string[]> {
  const { path } = parseLocation(spec, user);
  let st;
  try { st = await fs.stat(path); } catch { return []; }
  if (!st.isDirectory()) return [path];
  const names = (await fs.readdir(path)).filter((n) => n.endsWith('.sieve'));
  names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return names.map((n) => join(path, n));
}

function numbered(plugin: Record<string, string>, key: string): string[] {
  const out: string[] = [];
  if (plugin[key]) out.push(plugin[key]);
  for (let i = 2; plugin[key + i]; i++) out.push(plugin[key + i]);
  return out;
}

/** The user's active script path, or undefined (no script / dangling link). */
export async function activeScriptPath(plugin: Record<string, string>, user: SieveUser): Promise<string | undefined> {
  const loc = parseLocation(plugin.sieve || 'file:~/sieve;active=~/.dovecot.sieve', user);
  const candidates: string[] = [];
  if (loc.active) candidates.push(loc.active);
  else candidates.push(loc.path);
  for (const c of candidates) {
    try {
      const st = await fs.stat(c);
      if (st.isFile()) return resolve(dirname(c), await fs.realpath(c));
    } catch { /* missing */ }
  }
  if (plugin.sieve_default) {
    const d = parseLocation(plugin.sieve_default, user).path;
    try { if ((await fs.stat(d)).isFile()) return d; } catch { /* none */ }
  }
  return undefined;
}

/** Where `include :personal` and `include :global` look (directories; undefined = none configured). */
export interface IncludeDirs { personal?: string; global?: string }

export function includeDirs(plugin: Record<string, string>, user: SieveUser): IncludeDirs {
  const g = plugin.sieve_global || plugin.sieve_global_dir;
  return { personal: parseLocation(plugin.sieve || 'file:~/sieve;active=~/.dovecot.sieve', user).path, global: g ? parseLocation(g, user).path : undefined };
}

async function includePath(dirs: IncludeDirs, name: string, global: boolean): Promise<string | null> {
  const dir = global ? dirs.global : dirs.personal;
  if (!dir) return null;
  const p = join(dir, `${name}.sieve`);
  try { return (await fs.stat(p)).isFile() ? p : null; } catch { return null; }
}

/**
 * Load a script and check its non-optional includes exist (Pigeonhole's
 * compile-time check, its text); returns the script and the `include`
 * callback for runScript, which loads included scripts the same way.
 */
export async function loadWithIncludes(path: string, dirs: IncludeDirs, opts: CompileOptions = {}): Promise<CompiledScript> {
  const s = await loadScript(path, opts);
  const missing: string[] = [];
  for (const inc of s.includes) {
    if (inc.optional || await includePath(dirs, inc.name, inc.global)) continue;
    missing.push(`${s.name}: line ${inc.line}: error: included ${inc.global ? 'global' : 'personal'} script '${inc.name}' does not exist.`);
  }
  if (missing.length) throw new SieveCompileError(missing);
  return s;
}

export function includeLoader(dirs: IncludeDirs, opts: CompileOptions = {}): (name: string, global: boolean) => Promise<CompiledScript | null> {
  return async (name, global) => {
    const p = await includePath(dirs, name, global);
    return p ? loadWithIncludes(p, dirs, opts) : null;
  };
}

function tzOffset(d: Date): string {
  const m = -d.getTimezoneOffset();
  const a = Math.abs(m);
  return `${m < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

/** `message`: the whole message, or its start with the whole header (src/lmtp: the rest stays in its spool unless a body test reads it). */
export async function runSieveForDelivery(config: DovecotConfig, user: SieveUser, message: Buffer | MessageSource, envelope: SieveEnvelope, opts: DeliverOptions = {}): Promise<SieveOutcome> {
  const protocol = opts.protocol ?? 'lmtp';
  // userdb fields override plugin settings (Dovecot turns unknown userdb fields into plugin settings).
  const plugin = { ...config.plugin({ protocol }), ...Object.fromEntries(user.fields.filter(([k]) => k.startsWith('sieve'))) };
  const log = Logger.forUser(protocol, user.username);
  const errors: string[] = [];
  const scripts: string[] = [];
  for (const loc of numbered(plugin, 'sieve_before')) scripts.push(...await locationScripts(loc, user));
  const active = await activeScriptPath(plugin, user);
  if (active) scripts.push(active);
  for (const loc of numbered(plugin, 'sieve_after')) scripts.push(...await locationScripts(loc, user));
  const userLoc = parseLocation(plugin.sieve || 'file:~/sieve;active=~/.dovecot.sieve', user);
  const userLink = userLoc.active ?? userLoc.path;

  const msg = parseMessage(message);
  const dirs = includeDirs(plugin, user);
  const switches = extensionSwitches(plugin);
  const personal = { enabled: switches.enabled, settings: plugin };
  const admin = { enabled: [...switches.enabled, ...switches.global], settings: plugin };
  // RFC 5183 items as Pigeonhole's LDA/LMTP plugin sets them (lda-sieve-plugin.c: location MDA, phase during)
  const environment = environmentItems({ username: user.username, hostname: config.get('hostname', { protocol }) || hostname(), location: 'MDA', phase: 'during' });
  const dupeExists = (id: Buffer) => duplicateExists(user.home, user.username, id, opts.now?.getTime());
  const actions: SieveAction[] = [];
  let keep = true;
  let keepFlags: string[] = [];
  let keepHeader: Buffer | undefined;
  for (const path of scripts) {
    try {
      const copts = path === active ? personal : admin;
      const compiled = await loadWithIncludes(path, dirs, copts);
      const r = await runScript(compiled, { message: msg, envelope, mailboxExists: opts.mailboxExists, include: includeLoader(dirs, copts), warn: (m) => log.error(`sieve: ${path}: ${m}`),
        environment, duplicateExists: dupeExists, settings: plugin });
      for (const a of r.actions) {
        if (a.type === 'vacation' && actions.some((x) => x.type === 'vacation')) continue;
        const same = actions.findIndex((x) => (x.type === 'fileinto' && a.type === 'fileinto' && x.mailbox === a.mailbox) || (x.type === 'redirect' && a.type === 'redirect' && x.address.toLowerCase() === a.address.toLowerCase()));
        if (same >= 0) actions[same] = a; else actions.push(a);
      }
      keep = r.keep;
      keepFlags = r.keepFlags;
      keepHeader = r.keepHeader;
      if (!keep) break;
    } catch (e) {
      const lines = e instanceof SieveCompileError ? e.errors : [`${path}: ${(e as Error).message}`];
      errors.push(...lines);
      if (e instanceof SieveCompileError && path === active) {
        // As Pigeonhole: the details go to the user's log next to the active link, the server log points there.
        const userLog = `${userLink}.log`;
        const name = path.replace(/^.*\//, '').replace(/\.sieve$/, '');
        const stamp = formatTimestamp('%Y-%m-%d %H:%M:%S', opts.now ?? new Date()) + ' ' + tzOffset(opts.now ?? new Date());
        const text = [`sieve: info: started log at ${stamp}.`, ...lines, `${name}: error: ${e.kind} failed.`].join('\n') + '\n';
        try { await fs.writeFile(userLog, text, { mode: 0o600 }); } catch (w) { log.error(`sieve: failed to write ${userLog}: ${(w as Error).message}`); }
        log.info(`sieve: Failed to compile script \`${userLink}' (view user logfile \`${userLog}' for more information)`);
      } else {
        for (const l of lines) log.error(`sieve: ${l}`);
        log.error(`sieve: Execution of script ${path} failed, but implicit keep was successful`);
      }
      keep = true; keepFlags = [];
      // the implicit keep after a failure stores the message as it came
      keepHeader = undefined;
      break;
    }
  }

  const out: SieveOutcomeAction[] = [];
  const marks: { id: Buffer; expires: number }[] = [];
  const nowMs = opts.now?.getTime() ?? Date.now();
  for (const a of actions) {
    switch (a.type) {
      case 'duplicate': marks.push({ id: a.id, expires: Math.floor(nowMs / 1000) + a.seconds }); break;
      case 'notify': {
        // ntfy_mailto_action_execute: never for an automatic message, nothing without recipients
        if (autoSubmitted(msg)) { log.info(`sieve: not sending notification for auto-submitted message${envelope.from ? ` from <${envelope.from}>` : ''}`); break; }
        if (!a.notify.uri.recipients.length) { log.info('sieve: notify mailto uri specifies no recipients; action has no effect'); break; }
        // ntfy_mailto_send: sender and From are :from, else sieve_user_email, else postmaster_address; <> answers <>
        const postmaster = postmasterAddress(config, user, protocol);
        const userEmail = plugin.sieve_user_email || undefined;
        const sender = a.notify.from !== undefined ? parseFromAddress(a.notify.from) : userEmail ?? parseFromAddress(postmaster);
        const envFrom = envelope.from && envelope.from !== '<>' ? sender : null;
        // (the postmaster as message_address_write shows postmaster_address: "Postmaster" when it has no name)
        const from = a.notify.from ?? (userEmail ? `<${userEmail}>` : postmaster.includes('<') ? postmaster : `Postmaster <${postmaster}>`);
        const n = composeNotification({ ...a.notify, from }, msg, { owner: userEmail ?? envelope.to, envelopeFrom: envFrom, postmaster, now: opts.now });
        out.push({ type: 'notify', reply: n.message, mailFrom: n.envelopeFrom, rcpts: n.recipients });
        break;
      }
      case 'fileinto': out.push({ type: 'fileinto', mailbox: a.mailbox, flags: a.flags, create: a.create, header: a.header }); break;
      case 'redirect': out.push({ type: 'redirect', address: a.address, header: a.header }); break;
      case 'reject': out.push({ type: 'reject', address: envelope.from, reply: Buffer.from(a.reason, 'utf8') }); break;
      case 'vacation': {
        const why = vacationSuppressed(a, msg, envelope);
        if (why) { log.info(`sieve: discarded vacation reply to <${envelope.from}>: ${why}`); break; }
        if (!(await vacationDue(user.home, a, envelope.from, opts.now?.getTime()))) {
          log.info(`sieve: discarded duplicate vacation response to <${envelope.from}>`); break;
        }
        out.push({ type: 'vacation', address: envelope.from, reply: composeVacation(a, msg, envelope, opts.now) });
        break;
      }
      case 'keep': case 'discard': break;
    }
  }
  if (keep) out.push({ type: 'keep', flags: keepFlags, header: keepHeader });
  else if (!out.some((a) => a.type === 'fileinto' || a.type === 'redirect' || a.type === 'reject')) out.push({ type: 'discard' });
  const commit = async () => {
    try { await markDuplicates(user.home, user.username, marks, nowMs); } catch (e) { log.error(`sieve: failed to record duplicates: ${(e as Error).message}`); }
  };
  return { actions: out, errors, commit, bodyStart: msg.bodyStart };
}

/** `postmaster_address` with its %-variables (Dovecot's default: postmaster@ the recipient's domain, else the host name). */
function postmasterAddress(config: DovecotConfig, user: SieveUser, protocol: string): string {
  return expandVars(config.get('postmaster_address', { protocol }) || 'postmaster@%{if;%d;ne;;%d;%{hostname}}', { user: user.username, hostname: config.get('hostname', { protocol }) || hostname() });
}

/** The addr-spec of a notify :from (already valid: the script checked it). */
function parseFromAddress(from: string): string {
  const r = parseSieveAddress(from);
  return 'address' in r ? r.address : '';
}
