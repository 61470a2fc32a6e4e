/**
 * Dovecot 2.3's quota settings (quota.c, quota_root_add_rule and friends):
 * the root `quota = maildir:NAME[:noenforcing]` / `count:NAME`, its rules
 * `quota_rule`, `quota_rule2`, … (`*:storage=1G`, `*:bytes=N`,
 * `*:messages=N`, `Trash:storage=+100M`, `Trash:ignore`, percentages of the
 * `*` rule), `quota_grace` (default 10% of the storage limit: the last
 * message saved while under quota may pass the limit by that much),
 * `quota_vsizes`, `quota_exceeded_message`, `quota_max_mail_size` and the warning rules
 * `quota_warning`, `quota_warning2`, … (`[+|-]storage=95%% command args`,
 * quota_root_add_warning_rule: limits as a `*` rule's, percentages of the
 * `*` rule, `-` for "went below"). Userdb fields (ISPmail's
 * `quota_rule` from the user_query, `userdb_quota_rule` prefetched) override
 * `plugin {}` settings key by key, as mail_user_plugin_getenv does.
 */
import { wildcardMatch } from '../util/wildcard.js';

import { parseSize } from '../config/values.js';

export interface RuleLimits { bytes: number; bytesPercent: number; count: number; countPercent: number }
export interface QuotaRule extends RuleLimits { mask: string; ignore: boolean }

/** A `quota_warning` rule: the service command to run when usage crosses the limits. */
export interface QuotaWarningRule {
  bytes: number;
  count: number;
  /** `-`: runs when usage falls below the limit instead of reaching it. */
  reverse: boolean;
  /** `quota-warning 95 %u`: service socket, then its arguments (variables not yet expanded). */
  command: string;
}

export interface QuotaSettings {
  backend: 'maildir' | 'count';
  /** The root's name as IMAP and doveadm show it ("User quota"). */
  name: string;
  enforce: boolean;
  /** The `*` rule; 0 = no limit. */
  defaults: RuleLimits;
  /** Mailbox rules in configuration order (first match wins). */
  rules: QuotaRule[];
  graceBytes: number;
  vsizes: boolean;
  exceededMessage: string;
  /** In configuration order: Dovecot runs only the first one a change matches. */
  warnings: QuotaWarningRule[];
  /** quota_max_mail_size: the largest message a save may bring (0 = no limit). */
  maxMailSize: number;
}

export const DEFAULT_EXCEEDED_MESSAGE = 'Quota exceeded (mailbox for user is full)';
const UNITS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

export class QuotaConfigError extends Error {}

/** One `N[BKMGT%]` value; `storage` counts kilobytes when no unit is given. */
function parseLimit(key: string, raw: string, relative: boolean): { value: number; percent: number } {
  let v = raw.trim();
  let sign = 1;
  if (v.startsWith('+')) { if (!relative) throw new QuotaConfigError(`Rule relative value not allowed: ${raw}`); v = v.slice(1); }
  else if (v.startsWith('-')) { if (!relative) throw new QuotaConfigError(`Rule relative value not allowed: ${raw}`); sign = -1; v = v.slice(1); }
  const m = /^(\d+)\s*([a-zA-Z%]?)[bB]?$/.exec(v);
  if (!m) throw new QuotaConfigError(`Invalid ${key} limit: ${raw}`);
  const n = Number(m[1]);
  const unit = m[2].toUpperCase();
  if (unit === '%') return { value: 0, percent: sign * n };
  const mult = unit ? UNITS[unit] : key === 'storage' ? 1024 : 1;
  if (mult === undefined) throw new QuotaConfigError(`Unknown unit in ${key} limit: ${raw}`);
  return { value: sign * n * mult, percent: 0 };
}

function applyLimits(rule: RuleLimits & { ignore?: boolean }, text: string, relative: boolean): void {
  for (const part of text.trim().split(/\s+/).filter(Boolean)) {
    if (part === 'ignore') { rule.ignore = true; continue; }
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const val = eq < 0 ? '' : part.slice(eq + 1);
    if (key === 'backend') continue;
    if (key === 'storage' || key === 'bytes') { const l = parseLimit(key, val, relative); rule.bytes = l.value; rule.bytesPercent = l.percent; }
    else if (key === 'messages') { const l = parseLimit(key, val, relative); rule.count = l.value; rule.countPercent = l.percent; }
    else throw new QuotaConfigError(`Unknown rule limit name: ${key}`);
  }
}

const zero = (): RuleLimits => ({ bytes: 0, bytesPercent: 0, count: 0, countPercent: 0 });

/**
 * The user's quota settings, or null when there is no quota root (no
 * `quota` setting, or the quota plugin not loaded for the protocol: the
 * caller decides that). `fields` are the userdb fields (prefix removed).
 */
export function quotaSettings(plugin: Record<string, string>, fields: [string, string][]): QuotaSettings | null {
  const env = (k: string): string | undefined => {
    for (let i = fields.length - 1; i >= 0; i--) if (fields[i][0] === k) return fields[i][1];
    return plugin[k];
  };
  const root = env('quota');
  if (!root) return null;
  const parts = root.split(':');
  const backend = parts[0] === 'count' ? 'count' : 'maildir';
  const name = parts[1] ?? '';
  const s: QuotaSettings = {
    backend, name: name || parts[0], enforce: !parts.slice(2).includes('noenforcing'),
    defaults: zero(), rules: [], graceBytes: 0, vsizes: /^(yes|y|1|true)$/i.test(env('quota_vsizes') ?? ''),
    exceededMessage: env('quota_exceeded_message') || DEFAULT_EXCEEDED_MESSAGE, warnings: [], maxMailSize: 0,
  };
  const maxSize = env('quota_max_mail_size');
  if (maxSize) {
    const n = parseSize(maxSize);
    if (typeof n === 'string') throw new QuotaConfigError(`quota_max_mail_size: ${n}`);
    s.maxMailSize = n;
  }
  const ruleTexts: string[] = [];
  const first = env('quota_rule');
  if (first) ruleTexts.push(first);
  for (let i = 2; ; i++) { const r = env(`quota_rule${i}`); if (!r) break; ruleTexts.push(r); }
  for (const text of ruleTexts) {
    const colon = text.indexOf(':');
    if (colon < 0) throw new QuotaConfigError(`Invalid quota rule: ${text}`);
    const mask = text.slice(0, colon);
    const body = text.slice(colon + 1);
    if (mask === '*') { applyLimits(s.defaults, body, false); continue; }
    let rule = s.rules.find((r) => r.mask === mask);
    if (!rule) { rule = { mask, ignore: false, ...zero() }; s.rules.push(rule); }
    applyLimits(rule, body, true);
  }
  const d = s.defaults;
  // percentages of the default rule (quota_root_recalculate_relative_rules)
  for (const r of s.rules) {
    if (r.bytesPercent) r.bytes = Math.floor(d.bytes * r.bytesPercent / 100);
    if (r.countPercent) r.count = Math.floor(d.count * r.countPercent / 100);
  }
  for (let i = 1; ; i++) {
    const text = env(i === 1 ? 'quota_warning' : `quota_warning${i}`);
    if (!text) break;
    s.warnings.push(warningRule(text, d));
  }
  const grace = (env('quota_grace') ?? '10%').replace(/%%/g, '%');
  const g = { ...zero() };
  applyLimits(g, `bytes=${grace}`, false);
  s.graceBytes = g.bytesPercent ? Math.floor(d.bytes * g.bytesPercent / 100) : g.bytes;
  return s;
}

/**
 * One warning rule (quota_root_add_warning_rule): `LIMITS COMMAND…`, LIMITS
 * optionally led by `+` (the default, reaching it) or `-` (falling below);
 * `%%` in the configuration is the `%` of a percentage.
 */
function warningRule(raw: string, d: RuleLimits): QuotaWarningRule {
  const text = raw.replace(/%%/g, '%');
  const sp = text.indexOf(' ');
  if (sp < 0 || sp === text.length - 1) throw new QuotaConfigError(`Invalid warning rule: ${raw}`);
  let limits = text.slice(0, sp);
  const reverse = limits.startsWith('-');
  if (limits.startsWith('+') || reverse) limits = limits.slice(1);
  const r = zero();
  applyLimits(r, limits, false);
  return {
    bytes: r.bytesPercent ? Math.floor(d.bytes * r.bytesPercent / 100) : r.bytes,
    count: r.countPercent ? Math.floor(d.count * r.countPercent / 100) : r.count,
    reverse,
    command: raw.slice(raw.indexOf(' ') + 1),
  };
}

export function findRule(s: QuotaSettings, mailbox: string): QuotaRule | undefined {
  return s.rules.find((r) => wildcardMatch(mailbox, r.mask) || (mailbox === 'INBOX' && r.mask.toUpperCase() === 'INBOX'));
}

/**
 * Limits for saving into `mailbox` (quota_root_get_rule_limits): the `*`
 * rule plus the mailbox's relative rule; an unlimited user ignores mailbox
 * rules; `ignore` means no limit and no accounting there.
 */
export function ruleLimits(s: QuotaSettings, mailbox: string): { bytes: number; count: number; ignored: boolean } {
  let bytes = s.defaults.bytes;
  let count = s.defaults.count;
  if (bytes === 0 && count === 0) return { bytes: 0, count: 0, ignored: false };
  const r = findRule(s, mailbox);
  if (r?.ignore) return { bytes: 0, count: 0, ignored: true };
  if (r) { bytes += r.bytes; count += r.count; }
  return { bytes: Math.max(0, bytes), count: Math.max(0, count), ignored: false };
}

/** Compatibility for callers that only need the `*` rule (0 = unlimited). */
export function quotaLimits(fields: [string, string][], plugin: Record<string, string>): { bytes: number; messages: number } {
  const s = quotaSettings({ quota: 'maildir:User quota', ...plugin }, fields);
  return { bytes: s?.defaults.bytes ?? 0, messages: s?.defaults.count ?? 0 };
}
