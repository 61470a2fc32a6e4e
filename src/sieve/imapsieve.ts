/**
 * IMAPSieve (RFC 6785) the way Dovecot 2.3's `imap_sieve` plugin with
 * Pigeonhole 0.5 does it, for ISPmail's rspamd learning: administrator
 * scripts bound to mailboxes by `imapsieve_mailboxN_name` / `_from` /
 * `_causes` / `_before` / `_after` (imap-sieve-storage.c), run on the
 * messages an IMAP APPEND, COPY or MOVE (MOVE counts as COPY) stored in a
 * mailbox, or whose flags a STORE changed (FLAG), once the command's changes
 * are committed and before its tagged reply. Scripts see RFC 5183's core
 * environment items as a message store ("MS", "post"; environment.ts) and
 * imap.user, imap.email, imap.cause, imap.mailbox and
 * imap.changedflags (with `require "imapsieve"`); `pipe` runs programs from
 * `sieve_pipe_bin_dir` with the decrypted message (extprograms.ts). A
 * script that cancels the implicit keep marks the message \Deleted (COPY
 * and APPEND only), keep with changed imap4flags sets the message's flags,
 * fileinto stores a copy. Failures are logged and never fail the IMAP
 * command. User scripts from the `/shared/imapsieve/script` METADATA entry
 * (`imapsieve_url`) are not run.
 * The IMAP layer calls `run`; all mailbox and file access happens here.
 */
import type { DovecotConfig } from '../config/settings.js';
import { hostname } from 'node:os';
import type { Logger } from '../log/logger.js';
import type { MailStore } from '../mailstore/store.js';
import type { MailUser } from '../mailstore/user-store.js';
import type { MailFolder, MailMessage } from '../mailstore/api/mailbox.js';
import { SYSTEM_FLAGS, type SystemFlag } from '../mailstore/api/flags.js';
import { mutf7ToUtf8 } from '../mailstore/api/mailbox-utf7.js';
import { imapPattern } from '../util/wildcard.js';
import { SieveCompileError, type CompiledScript } from './compile.js';
import { runScript, type SieveAction } from './interpreter.js';
import { parseMessage } from './message.js';
import { environmentItems } from './environment.js';
import { extensionSwitches } from './extensions.js';
import { loadScript, parseLocation } from './deliver.js';
import { PipeError, pipeSettings, runPipe, type PipeSettings } from './extprograms.js';

export type ImapSieveCause = 'APPEND' | 'COPY' | 'FLAG';
const CAUSES: readonly string[] = ['APPEND', 'COPY', 'FLAG'];

export interface ImapSieveRule {
  index: number;
  /** Destination mailbox pattern (`*`, `%` as in LIST; a lone `*` is any mailbox). */
  mailbox: string;
  /** Source mailbox pattern; null = any source, or none (APPEND). */
  from: string | null;
  /** Upper-case causes; null = every cause. */
  causes: string[] | null;
  before?: string;
  after?: string;
}

export interface ImapSieveRules { statics: ImapSieveRule[]; patterns: ImapSieveRule[] }

const hasWildcards = (p: string) => p.includes('%') || p.includes('*');

/**
 * imapsieve_mailbox1_*, imapsieve_mailbox2_*, … up to the first number
 * without a `_name` (imap_sieve_mailbox_rules_init). A rule naming an
 * unknown cause, or repeating a static (wildcard-free) name/from pair, is
 * skipped with Pigeonhole's warning.
 */
export function parseImapSieveRules(plugin: Record<string, string>, warn: (msg: string) => void = () => undefined): ImapSieveRules {
  const statics: ImapSieveRule[] = [];
  const patterns: ImapSieveRule[] = [];
  const trim = (v: string) => v.replace(/^[\t ]+|[\t ]+$/g, '');
  for (let i = 1; ; i++) {
    const key = `imapsieve_mailbox${i}`;
    const name = plugin[`${key}_name`];
    if (!name) break;
    const rule: ImapSieveRule = { index: i, mailbox: trim(name), from: null, causes: null };
    const from = plugin[`${key}_from`];
    if (from) rule.from = trim(from) === '*' ? null : trim(from);
    const isStatic = (rule.mailbox === '*' || !hasWildcards(rule.mailbox)) && (rule.from === null || !hasWildcards(rule.from));
    if (isStatic && statics.some((r) => r.mailbox === rule.mailbox && r.from === rule.from)) {
      warn(`imapsieve: Duplicate static mailbox rule [${i}] for mailbox \`${rule.mailbox}' (skipped)`);
      continue;
    }
    const causes = plugin[`${key}_causes`];
    if (causes) {
      const list = causes.split(/[ \t,]+/).filter(Boolean);
      const bad = list.find((c) => !CAUSES.includes(c.toUpperCase()));
      if (bad !== undefined) { warn(`imapsieve: Static mailbox rule [${i}] has invalid event cause \`${bad}' (skipped)`); continue; }
      rule.causes = list.map((c) => c.toUpperCase());
    }
    if (plugin[`${key}_before`]) rule.before = plugin[`${key}_before`];
    if (plugin[`${key}_after`]) rule.after = plugin[`${key}_after`];
    (isStatic ? statics : patterns).push(rule);
  }
  return { statics, patterns };
}

/**
 * IMAP LIST matching (Dovecot's imap_match with inboxcase): `*` matches
 * anything, `%` anything but the hierarchy separator; INBOX (and the INBOX
 * of INBOX/child names) compares case-insensitively, the rest exactly.
 */
export function imapMatch(pattern: string, name: string, sep: string): boolean {
  return imapPattern(pattern, sep).test(name);
}

const causeMatches = (r: ImapSieveRule, cause: string) => !r.causes || r.causes.includes(cause.toUpperCase());

/**
 * The rules that apply to an event, in Pigeonhole's order
 * (imap_sieve_mailbox_rules_get): the wildcard rules in configuration
 * order, then the static ones for (mailbox, from), (*, from), (mailbox,
 * any) and (*, any). Each static rule is inserted before the first rule
 * found with a higher index, and at the front when there is none (so a
 * static rule can come before wildcard rules with lower numbers): that is
 * what imap_sieve_mailbox_rules_match does, and script order follows it.
 */
export function matchImapSieveRules(rules: ImapSieveRules, mailbox: string, from: string | null, cause: ImapSieveCause, sep = '.'): ImapSieveRule[] {
  const out: ImapSieveRule[] = [];
  for (const r of rules.patterns) {
    if (from === null && r.from !== null) continue;
    if (!causeMatches(r, cause)) continue;
    if (r.mailbox !== '*' && !imapMatch(r.mailbox, mailbox, sep)) continue;
    if (r.from !== null && !imapMatch(r.from, from!, sep)) continue;
    out.push(r);
  }
  const lookup = (name: string, src: string | null) => {
    const r = rules.statics.find((x) => x.mailbox === name && x.from === src);
    if (!r || !causeMatches(r, cause)) return;
    const at = out.findIndex((x) => r.index < x.index);
    out.splice(at < 0 ? 0 : at, 0, r);
  };
  lookup(mailbox, from);
  lookup('*', from);
  if (from !== null) { lookup(mailbox, null); lookup('*', null); }
  return out;
}

/** One IMAP command's messages for IMAPSieve: mailbox names in the store's form (modified UTF-7), as the IMAP layer has them. */
export interface ImapSieveEvent {
  cause: ImapSieveCause;
  mailbox: string;
  /** Source mailbox of a COPY/MOVE (the mailbox itself for FLAG); null for APPEND. */
  from: string | null;
  uids: number[];
  /** FLAG: imap.changedflags per UID (flags in IMAP syntax, space-separated). */
  changedFlags?: Map<number, string>;
}

/** What the IMAP layer needs: nothing to do is cheap to find out. */
export interface ImapSieveHook {
  wants(cause: ImapSieveCause, mailbox: string, from: string | null): boolean;
  run(ev: ImapSieveEvent): Promise<void>;
}

/**
 * Pigeonhole's extension switches: `sieve_extensions` (default set,
 * `+ext`/`-ext` or a replacing list) and, for administrator scripts,
 * `sieve_global_extensions`. vnd.dovecot.* are off unless listed.
 */
function enabledExtensions(plugin: Record<string, string>): Set<string> {
  const on = new Set<string>(['environment', 'imapsieve']);
  for (const key of ['sieve_extensions', 'sieve_global_extensions']) {
    const items = (plugin[key] ?? '').split(/\s+/).filter(Boolean);
    if (key === 'sieve_extensions' && items.some((x) => !/^[+-]/.test(x))) on.clear(), on.add('imapsieve');
    for (const x of items) {
      if (x.startsWith('-')) on.delete(x.slice(1));
      else on.add(x.replace(/^\+/, ''));
    }
  }
  if (!(plugin.sieve_plugins ?? '').split(/[\s,]+/).includes('sieve_extprograms')) on.delete('vnd.dovecot.pipe');
  return on;
}

export class ImapSieve implements ImapSieveHook {
  private readonly rules: ImapSieveRules;
  private readonly extensions: string[];
  /** sieve_extensions (`-environment` included) plus sieve_global_extensions: IMAPSieve's scripts are the administrator's. */
  private readonly enabled: string[];
  private readonly pipe: PipeSettings | null;
  private readonly sep: string;

  constructor(private readonly config: DovecotConfig, private readonly user: MailUser, private readonly store: MailStore, private readonly log: Logger, private readonly plugin: Record<string, string>) {
    this.rules = parseImapSieveRules(plugin, (m) => log.warn(m));
    this.extensions = [...enabledExtensions(plugin)];
    const switches = extensionSwitches(plugin);
    this.enabled = [...switches.enabled, ...switches.global];
    this.pipe = pipeSettings(plugin);
    // the mailbox's namespace separator (unset: the layout's, "/" for LAYOUT=fs): the store knows it
    this.sep = store.sep;
  }

  /** The user's IMAPSieve, or null without `imap_sieve` in their mail_plugins or without rules. */
  static forUser(config: DovecotConfig, user: MailUser, store: MailStore, mailPlugins: string[], log: Logger): ImapSieve | null {
    if (!mailPlugins.includes('imap_sieve')) return null;
    // userdb fields override plugin settings, as Dovecot's mail_user_plugin_getenv sees them
    const plugin = { ...config.plugin({ protocol: 'imap' }), ...Object.fromEntries(user.fields.filter(([k]) => k.startsWith('sieve') || k.startsWith('imapsieve'))) };
    const s = new ImapSieve(config, user, store, log, plugin);
    return s.rules.statics.length || s.rules.patterns.length ? s : null;
  }

  private vname(name: string): string { return name.toUpperCase() === 'INBOX' ? 'INBOX' : mutf7ToUtf8(name); }

  private scriptsFor(cause: ImapSieveCause, mailbox: string, from: string | null): string[] {
    const rules = matchImapSieveRules(this.rules, this.vname(mailbox), from === null ? null : this.vname(from), cause, this.sep);
    const home = { username: this.user.username, home: this.user.home ?? '', fields: this.user.fields };
    const before = rules.filter((r) => r.before).map((r) => parseLocation(r.before!, home).path);
    const after = rules.filter((r) => r.after).map((r) => parseLocation(r.after!, home).path);
    return [...before, ...after];
  }

  wants(cause: ImapSieveCause, mailbox: string, from: string | null): boolean {
    return this.scriptsFor(cause, mailbox, from).length > 0;
  }

  async run(ev: ImapSieveEvent): Promise<void> {
    try { await this.runEvent(ev); } catch (e) {
      this.log.error(`imapsieve: mailbox ${this.vname(ev.mailbox)}: ${(e as Error).message}`);
    }
  }

  private async runEvent(ev: ImapSieveEvent): Promise<void> {
    const paths = this.scriptsFor(ev.cause, ev.mailbox, ev.from);
    if (!paths.length || !ev.uids.length) return;
    const scripts: Array<{ path: string; compiled: CompiledScript | null }> = [];
    for (const path of paths) {
      try { scripts.push({ path, compiled: await loadScript(path, { extensions: this.extensions, enabled: this.enabled }) }); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // a missing script is skipped, as Pigeonhole's sieve_script_create_open
        if (e instanceof SieveCompileError) for (const l of e.errors) this.log.error(`sieve: ${l}`);
        else this.log.error(`sieve: ${path}: ${(e as Error).message}`);
        // Pigeonhole: a script that fails to compile ends the sequence there
        scripts.push({ path, compiled: null });
      }
    }
    if (!scripts.length) return;
    // a synchronized view of the mailbox, as Pigeonhole's (the command's own handle may lag)
    const folder = await this.store.open(ev.mailbox);
    await folder.sync();
    for (const uid of ev.uids) {
      const m = folder.message(uid);
      if (!m) { this.log.error(`imapsieve: mailbox ${this.vname(ev.mailbox)}: Failed to find message for Sieve event (UID=${uid})`); continue; }
      await this.runMail(ev, folder, m, scripts);
    }
  }

  private async runMail(ev: ImapSieveEvent, folder: MailFolder, m: MailMessage, scripts: Array<{ path: string; compiled: CompiledScript | null }>): Promise<void> {
    const raw = await folder.readAll(m);
    const msg = parseMessage(raw);
    const current = [...m.flags, ...m.keywords];
    const environment: Record<string, string> = {
      'imap.user': this.user.username,
      'imap.cause': ev.cause,
      'imap.mailbox': this.vname(ev.mailbox),
    };
    const email = this.plugin.sieve_user_email || (this.user.username.includes('@') ? this.user.username : '');
    if (email) environment['imap.email'] = email;
    const changed = ev.changedFlags?.get(m.uid);
    if (changed !== undefined) environment['imap.changedflags'] = changed;
    // RFC 5183's core items, as Pigeonhole's imapsieve plugin sets them (imap-sieve.c: location MS, phase post)
    const core = environmentItems({ username: this.user.username, hostname: this.config.get('hostname', { protocol: 'imap' }) || hostname(), location: 'MS', phase: 'post' });
    // each action with the script that asked for it (a failure names the script, as Pigeonhole's log)
    const actions: Array<{ a: SieveAction; path: string }> = [];
    let keep = true;
    let keepFlags = current;
    let flags = current;
    for (const s of scripts) {
      if (!s.compiled) { keep = true; keepFlags = current; break; }
      // the imap.* items exist only for scripts that require imapsieve (Pigeonhole registers them with it)
      const env = s.compiled.extensions.has('imapsieve') ? { ...core, ...environment } : core;
      try {
        const r = await runScript(s.compiled, { message: msg, envelope: { from: '', to: '' }, flags, environment: env, mailboxExists: (n) => this.store.exists(n) });
        actions.push(...r.actions.map((a) => ({ a, path: s.path })));
        keep = r.keep;
        keepFlags = flags = r.keepFlags;
        if (!keep) break;
      } catch (e) {
        this.log.error(`sieve: uid=${m.uid}: ${s.path}: ${(e as Error).message}`);
        keep = true; keepFlags = current;
        break;
      }
    }
    let failed = false;
    for (const { a, path } of actions) {
      try { failed = !(await this.perform(a, folder, m, raw)); } catch (e) {
        this.log.error(`sieve: uid=${m.uid}: ${a.type} action: ${(e as Error).message}`);
        failed = true;
      }
      if (failed) { this.log.error(`sieve: Execution of script ${path} failed`); break; }
    }
    // an action that failed leaves the message as it was (Pigeonhole's implicit keep after a failed execution)
    if (failed) return;
    const canDiscard = ev.cause !== 'FLAG';
    if (!keep && canDiscard) {
      if (!m.flags.has('\\Deleted')) await folder.setFlags(m, [...m.flags, '\\Deleted'], m.keywords);
      return;
    }
    if (keep) await this.applyFlags(folder, m, keepFlags);
  }

  /** keep with imap4flags changes: the message's flags become the script's. */
  private async applyFlags(folder: MailFolder, m: MailMessage, want: string[]): Promise<void> {
    const sys = want.map((f) => SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase())).filter((x): x is SystemFlag => !!x);
    const kws = want.filter((f) => !f.startsWith('\\'));
    const same = sys.length === m.flags.size && sys.every((f) => m.flags.has(f)) && kws.length === m.keywords.length && kws.every((k) => m.keywords.includes(k));
    if (!same) await folder.setFlags(m, sys, kws);
  }

  /** Perform one action on the message (`raw`: its plaintext, read once through the store); false when it failed (logged). */
  private async perform(a: SieveAction, folder: MailFolder, m: MailMessage, raw: Buffer): Promise<boolean> {
    switch (a.type) {
      case 'pipe': {
        if (!this.pipe) {
          this.log.error(`sieve: uid=${m.uid}: action pipe: failed to execute program \`${a.program}': vnd.dovecot.pipe extension is unconfigured`);
          return a.try;
        }
        try {
          await runPipe(this.pipe, {
            program: a.program, args: a.args, input: raw,
            env: { USER: this.user.username, HOME: this.user.home, HOST: this.config.get('hostname') || undefined },
            uid: numeric(this.user.uid), gid: numeric(this.user.gid),
          });
          // Dovecot logs nothing for a program that succeeded (ISPmail learns on every move)
          this.log.debug(`sieve: uid=${m.uid}: pipe action: piped message to program \`${a.program}'`);
          return true;
        } catch (e) {
          if (!(e instanceof PipeError)) throw e;
          // Dovecot's lines: the program client's, then Pigeonhole's (the reason replaces its "refer to server log")
          if (e.programLine?.level === 'error') this.log.error(e.programLine.text);
          else if (e.programLine) this.log.info(e.programLine.text);
          const what = e.kind === 'exit' ? 'failed to execute to program' : 'failed to pipe message to program';
          if (a.try) { this.log.info(`sieve: ${what} \`${a.program}' (:try): ${e.message}`); return true; }
          this.log.error(`sieve: ${what} \`${a.program}': ${e.message}`);
          return false;
        }
      }
      case 'fileinto': {
        if (a.create && !(await this.store.exists(a.mailbox))) await this.store.create(a.mailbox);
        const target = await this.store.open(a.mailbox);
        const sys = a.flags.map((f) => SYSTEM_FLAGS.find((x) => x.toLowerCase() === f.toLowerCase())).filter((x): x is SystemFlag => !!x);
        await target.copyFrom(folder, m, { flags: sys, keywords: a.flags.filter((f) => !f.startsWith('\\')) });
        this.log.info(`sieve: uid=${m.uid}: fileinto action: stored mail into mailbox '${a.mailbox}'`);
        return true;
      }
      case 'keep': case 'discard': return true;
      default:
        this.log.error(`sieve: uid=${m.uid}: the ${a.type} action is not supported by Sealmail's IMAPSieve (ignored)`);
        return true;
    }
  }
}

function numeric(v: string | undefined): number | undefined {
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}
