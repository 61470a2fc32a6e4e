/**
 * Dovecot quota rules (`quota_rule = *:storage=1G`, `*:bytes=1048576`,
 * `*:messages=1000`, ISPmail's `*:bytes=%{quota}` from the userdb, `0` =
 * unlimited) and a user's usage from Maildir++ `maildirsize` (or a count of
 * every folder when the file is missing, as Dovecot recalculates it).
 */
import type { MailStore } from '../mailstore/store.js';

export interface QuotaLimits { bytes: number; messages: number }

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

function size(v: string): number {
  const m = /^(\d+)\s*([BKMGT]?)B?$/i.exec(v.trim());
  return m ? Number(m[1]) * UNITS[m[2].toUpperCase()] : 0;
}

/** The `*` rule of the user (userdb `quota_rule` wins over plugin settings); 0 = unlimited. */
export function quotaLimits(fields: [string, string][], plugin: Record<string, string>): QuotaLimits {
  const rule = fields.find(([k]) => k === 'quota_rule')?.[1] ?? plugin.quota_rule ?? '';
  const out: QuotaLimits = { bytes: 0, messages: 0 };
  const m = /^\*:(.*)$/.exec(rule.trim());
  if (!m) return out;
  for (const part of m[1].split(/\s+/)) {
    const [k, v] = part.split('=');
    if (!v) continue;
    if (k === 'storage') out.bytes = size(v) * (/^\d+$/.test(v.trim()) ? 1024 : 1); // storage without unit is kilobytes
    else if (k === 'bytes') out.bytes = size(v);
    else if (k === 'messages') out.messages = Number(v) || 0;
  }
  return out;
}

export async function quotaUsage(store: MailStore): Promise<{ bytes: number; messages: number }> {
  const q = await store.quota();
  if (q) return { bytes: q.bytes, messages: q.count };
  let bytes = 0;
  let messages = 0;
  for (const e of await store.list(true)) {
    if (e.flags.includes('\\Noselect') || e.flags.includes('\\NonExistent')) continue;
    const st = await store.status(e.name).catch(() => null);
    if (st) { bytes += st.size; messages += st.messages; }
  }
  return { bytes, messages };
}
