/**
 * One user's quota root as Dovecot 2.3's quota plugin keeps it: usage from
 * the backend (`maildir`: Maildir++ `maildirsize`, recalculated when
 * missing, over 5120 bytes or written for other limits; `count`: every
 * mailbox's messages and sizes, vsizes with `quota_vsizes`), and the save
 * test of quota_transaction_set_limits/quota_transaction_is_over: a user
 * under the limit may save while used + size stays within limit + grace; a
 * user at or over it may save nothing. Protocol layers turn a refusal into
 * their own reply (LMTP 552/452, IMAP NO [OVERQUOTA]).
 * Warning rules run after each counted change as quota_warnings_execute
 * does (see `changed`); warning.ts executes them.
 */
import type { DovecotConfig } from '../config/settings.js';
import { expandVars, withDerivedNames, type VarTable } from '../config/vars.js';
import { Logger } from '../log/logger.js';
import type { MailStore } from '../mailstore/store.js';
import { findRule, quotaSettings, ruleLimits, type QuotaSettings, type QuotaWarningRule } from './rules.js';
import { runQuotaWarning } from './warning.js';

export interface QuotaUsed { bytes: number; count: number }
export interface QuotaResource { type: 'STORAGE' | 'MESSAGE'; value: number; limit: number }

/** quota.c's text for a message over quota_max_mail_size (QUOTA_ALLOC_RESULT_OVER_MAXSIZE). */
export const OVER_MAXSIZE_MESSAGE = 'Mail size is larger than the maximum size allowed by server configuration';

/** A save refused by quota (the protocol layer words the reply). */
export class QuotaExceeded extends Error {}

/** Dovecot recalculates a maildirsize that grew past this. */
const MAILDIRSIZE_MAX = 5120;

/** QUOTA_EXCEEDED of quota.c: from under the limit to at or over it (a 0 limit never is). */
const reaches = (from: number, to: number, limit: number) => limit > 0 && from < limit && to >= limit;

function crossed(w: QuotaWarningRule, before: QuotaUsed, after: QuotaUsed): boolean {
  return w.reverse
    ? reaches(after.bytes, before.bytes, w.bytes) || reaches(after.count, before.count, w.count)
    : reaches(before.bytes, after.bytes, w.bytes) || reaches(before.count, after.count, w.count);
}

export class UserQuota {
  /**
   * `warn`: the configuration and the user's variables for warning
   * commands; without it (or without warning rules) no warning runs.
   */
  constructor(readonly settings: QuotaSettings, readonly store: MailStore, readonly username: string, private readonly warn?: { config: DovecotConfig; vars: VarTable }) {
    if (settings.rules.some((r) => r.ignore)) store.quotaIgnored = (name) => findRule(settings, name)?.ignore === true;
    if (settings.warnings.length && warn) store.quotaChanged = (changes) => this.changed(changes);
  }

  /**
   * The quota root of a user for a protocol: needs `quota` in the user's
   * mail_plugins (resolved once by the mail-user service, src/mailuser; the
   * quota-status service always loads it) and a `quota` root setting;
   * userdb fields override plugin settings.
   */
  static forUser(config: DovecotConfig, protocol: string, username: string, fields: [string, string][], store: MailStore, mailPlugins: readonly string[]): UserQuota | null {
    if (protocol !== 'quota-status' && !mailPlugins.includes('quota')) return null;
    const s = quotaSettings(config.plugin({ protocol }), fields);
    if (!s) return null;
    const f = new Map(fields);
    const vars = withDerivedNames({ user: username, home: f.get('home') ?? store.opts.home, uid: f.get('uid'), gid: f.get('gid'), service: protocol, pid: String(process.pid) });
    return new UserQuota(s, store, username, { config, vars });
  }

  /**
   * quota_warnings_execute after a quota transaction: the usage now (its
   * change already in maildirsize), before = now minus the change (0 where
   * that is negative, as Dovecot's unsigned sums), and the first warning rule
   * in configuration order the change crosses is run, no other. `changes`
   * are transactions in commit order (a batch of deliveries), so each gets
   * its own before and after.
   */
  private async changed(changes: [number, number][]): Promise<void> {
    try {
      let now = await this.usage();
      const steps: { before: QuotaUsed; after: QuotaUsed }[] = [];
      for (let i = changes.length - 1; i >= 0; i--) {
        const [b, c] = changes[i];
        const before = { bytes: b > 0 && now.bytes < b ? 0 : now.bytes - b, count: c > 0 && now.count < c ? 0 : now.count - c };
        if (b !== 0 || c !== 0) steps.unshift({ before, after: now });
        now = before;
      }
      for (const { before, after } of steps) {
        const w = this.settings.warnings.find((r) => crossed(r, before, after));
        if (!w) continue;
        const reason = `bytes=${before.bytes} -> ${after.bytes}, count=${before.count} -> ${after.count}`;
        runQuotaWarning(this.warn!.config, expandVars(w.command, this.warn!.vars), reason);
      }
    } catch (e) {
      // a warning is never a reason to fail the save that is already on disk
      Logger.forUser('quota', this.username).error(`quota warning not run: ${(e as Error).message}`);
    }
  }

  get name(): string { return this.settings.name; }

  /** quota_exceeded_message with %u etc. expanded. */
  exceededMessage(): string {
    const at = this.username.indexOf('@');
    return expandVars(this.settings.exceededMessage, { user: this.username, username: at < 0 ? this.username : this.username.slice(0, at), domain: at < 0 ? '' : this.username.slice(at + 1) });
  }

  private limitsLine(): string {
    const d = this.settings.defaults;
    const parts: string[] = [];
    if (d.bytes > 0) parts.push(`${d.bytes}S`);
    if (d.count > 0) parts.push(`${d.count}C`);
    return parts.length ? parts.join(',') : '0S';
  }

  /** Count what the backend would: every mailbox not ignored by a rule. */
  private async count(vsizes: boolean): Promise<QuotaUsed> {
    let bytes = 0;
    let count = 0;
    for (const e of await this.store.list(true)) {
      if (e.flags.includes('\\Noselect') || e.flags.includes('\\NonExistent')) continue;
      if (findRule(this.settings, e.name)?.ignore) continue;
      const st = await this.store.status(e.name).catch(() => null);
      if (st) { bytes += vsizes ? st.vsize : st.size; count += st.messages; }
    }
    return { bytes, count };
  }

  /** doveadm quota recalc: maildir rewrites maildirsize; count has nothing stored. */
  async recalc(): Promise<QuotaUsed> {
    const used = await this.count(this.settings.backend === 'count' && this.settings.vsizes);
    if (this.settings.backend === 'maildir') await this.store.writeMaildirsize(this.limitsLine(), used.bytes, used.count);
    return used;
  }

  async usage(): Promise<QuotaUsed> {
    if (this.settings.backend === 'count') return this.count(this.settings.vsizes);
    const file = await this.store.readMaildirsizeFile();
    if (file && file.text.length <= MAILDIRSIZE_MAX && file.text.split('\n')[0] === this.limitsLine()) {
      return { bytes: Math.max(0, file.usage.bytes), count: Math.max(0, file.usage.count) };
    }
    return this.recalc();
  }

  /** GETQUOTA / doveadm quota get: the `*` rule's limits (0 = none). */
  async resources(): Promise<QuotaResource[]> {
    const used = await this.usage();
    return [
      { type: 'STORAGE', value: used.bytes, limit: this.settings.defaults.bytes },
      { type: 'MESSAGE', value: used.count, limit: this.settings.defaults.count },
    ];
  }

  /**
   * Would saving messages of these sizes into `mailbox` (one transaction,
   * as a COPY of several) stay within quota? Sizes are what Dovecot tests:
   * the incoming stream's size on LMTP/APPEND, the physical size on COPY.
   */
  async fits(mailbox: string, sizes: number[]): Promise<boolean> {
    // maildir: the save will append to maildirsize, so it must exist and be current first
    const early = this.settings.backend === 'maildir' ? await this.usage() : null;
    if (!this.settings.enforce) return true;
    const lim = ruleLimits(this.settings, mailbox);
    if (lim.ignored || (lim.bytes === 0 && lim.count === 0)) return true;
    const cur = early ?? await this.usage();
    let bytesCeil = Infinity;
    let bytesOver = 0;
    let countCeil = Infinity;
    if (lim.bytes > 0) {
      if (lim.bytes <= cur.bytes) { bytesCeil = 0; bytesOver = cur.bytes - lim.bytes; }
      else bytesCeil = lim.bytes - cur.bytes + this.settings.graceBytes;
    }
    if (lim.count > 0) countCeil = lim.count <= cur.count ? 0 : lim.count - cur.count;
    let bytesUsed = 0;
    let countUsed = 0;
    for (const size of sizes) {
      if (countCeil < 1 || countCeil - 1 < countUsed) return false;
      if (size === 0) { if (bytesOver > 0) return false; }
      else if (bytesCeil < size || bytesCeil - size < bytesUsed) return false;
      bytesUsed += size;
      countUsed++;
    }
    return true;
  }

  /** lmtp_rcpt_check_quota: is the user already over quota (a zero-size test)? */
  async overAlready(mailbox = 'INBOX'): Promise<boolean> {
    return !(await this.fits(mailbox, [0]));
  }
}
