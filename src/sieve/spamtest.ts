/**
 * spamtest, spamtestplus and virustest (RFC 5235) as Pigeonhole 0.5
 * computes their value (ext-spamvirustest-common.c) from the settings
 * `sieve_spamtest_status_type` (score, strlen, text),
 * `sieve_spamtest_status_header` ("Header[: regexp]" whose first group is
 * the value), `sieve_spamtest_max_header` or `sieve_spamtest_max_value`,
 * `sieve_spamtest_text_valueN` (N 0..10), and the same with `virustest`
 * (text values 0..5). The result is "0" when the extension is not
 * configured or the message has no usable status; else 1..10 for spamtest,
 * 1..5 for virustest and 0..100 with :percent. A misconfiguration is
 * reported once per run through `warn`, with Pigeonhole's texts.
 */
import { compileRegex, execRegex, RegexSyntaxError, type CompiledRegex } from './regex.js';
import type { ParsedMessage } from './message.js';

interface HeaderSpec { name: string; re?: CompiledRegex }
interface Config { type: 'score' | 'strlen' | 'text'; status: HeaderSpec; maxHeader?: HeaderSpec; maxValue?: number; text: (string | undefined)[] }

/** ext_spamvirustest_parse_decimal_value: [+-], at most 5 digits each side of '.' or ','. */
function decimal(s: string): number | null {
  const m = /^([+-]?)([0-9]{0,5})(?:[.,]([0-9]{0,5}))?$/.exec(s);
  if (!s || !m) return null;
  const v = Number(`${m[2] || '0'}.${m[3] || '0'}`);
  return m[1] === '-' ? -v : v;
}

function headerSpec(data: string): HeaderSpec | string {
  if (!data) return 'empty header specification';
  const m = /^[ \t]*[^: \t]*/.exec(data)!;
  const name = m[0];
  let rest = data.slice(name.length);
  if (!rest) return { name: data };
  rest = rest.replace(/^[ \t]*/, '');
  if (!rest) return { name };
  if (rest[0] !== ':') return `expecting ':', but found '${rest[0]}'`;
  const pattern = rest.slice(1).replace(/^[ \t]*/, '');
  try { return { name, re: compileRegex(pattern, false) }; } catch (e) {
    if (!(e instanceof RegexSyntaxError)) throw e;
    return `failed to compile regular expression '${pattern}': ${e.message}`;
  }
}

/** ext_spamvirustest_load: the configuration, or null (tests then match against "0") with the reason. */
function load(plugin: Record<string, string>, ext: 'spamtest' | 'virustest', warn: (m: string) => void): Config | null {
  const get = (k: string) => plugin[`sieve_${ext}_${k}`];
  const statusHeader = get('status_header');
  if (statusHeader === undefined || statusHeader === '') return null;
  const t = get('status_type') || 'score';
  if (t !== 'score' && t !== 'strlen' && t !== 'text') { warn(`${ext}: invalid status type '${t}'`); return null; }
  const maxHeader = get('max_header') || undefined, maxValue = get('max_value') || undefined;
  if (t !== 'text') {
    if (maxHeader && maxValue) { warn(`${ext}: sieve_${ext}_max_header and sieve_${ext}_max_value cannot both be configured`); return null; }
    if (!maxHeader && !maxValue) { warn(`${ext}: none of sieve_${ext}_max_header or sieve_${ext}_max_value is configured`); return null; }
  }
  const status = headerSpec(statusHeader);
  if (typeof status === 'string') { warn(`${ext}: invalid status header specification '${statusHeader}': ${status}`); return null; }
  const cfg: Config = { type: t, status, text: [] };
  if (t === 'text') {
    for (let i = 0; i <= (ext === 'virustest' ? 5 : 10); i++) cfg.text[i] = get(`text_value${i}`) || undefined;
    return cfg;
  }
  if (maxHeader) {
    const mh = headerSpec(maxHeader);
    if (typeof mh === 'string') { warn(`${ext}: invalid max header specification '${maxHeader}': ${mh}`); return null; }
    cfg.maxHeader = mh;
  } else {
    const v = decimal(maxValue!);
    if (v === null) { warn(`${ext}: invalid max value specification '${maxValue}'`); return null; }
    cfg.maxValue = v;
  }
  return cfg;
}

async function headerValue(msg: ParsedMessage, spec: HeaderSpec): Promise<string | null> {
  const v = msg.headers.find((h) => h.name === spec.name.toLowerCase())?.value;
  if (v === undefined) return null;
  if (!spec.re) return v;
  const m = await execRegex(spec.re, v);
  return m && m.length > 1 ? m[1] : null;
}

/** The score ratio 0..1, or -1 when the message gives none (ext_spamvirustest_get_value). */
async function ratio(cfg: Config, msg: ParsedMessage, ext: 'spamtest' | 'virustest'): Promise<number> {
  let max: number;
  if (cfg.type === 'text') max = ext === 'virustest' ? 5 : 10;
  else if (cfg.maxHeader) {
    const v = await headerValue(msg, cfg.maxHeader);
    const n = v === null ? null : decimal(v);
    if (n === null) return -1;
    max = n;
  } else max = cfg.maxValue!;
  if (max === 0) return -1;
  const status = await headerValue(msg, cfg.status);
  if (status === null) return -1;
  let value: number;
  if (cfg.type === 'score') { const n = decimal(status); if (n === null) return -1; value = n; }
  else if (cfg.type === 'strlen') { if (status && [...status].some((c) => c !== status[0])) return -1; value = status.length; }
  else { const i = cfg.text.findIndex((t) => t !== undefined && t === status); if (i < 0) return -1; value = i; }
  return value < 0 ? 0 : value > max ? 1 : value / max;
}

/**
 * The value a spamtest/virustest test compares: `ext` is the test's name
 * (spamtestplus shares spamtest's settings).
 */
export async function spamVirusValue(plugin: Record<string, string>, ext: 'spamtest' | 'virustest', percent: boolean, msg: ParsedMessage, warn: (m: string) => void = () => undefined): Promise<string> {
  const cfg = load(plugin, ext, (m) => warn(`${m}; extension not configured, tests will always match against "0"`));
  if (!cfg) return '0';
  let r = await ratio(cfg, msg, ext);
  if (r < 0) return '0';
  if (r > 1) r = 1;
  // float arithmetic as the C code's (score_ratio * N + 1.001, truncated)
  const f = Math.fround;
  if (percent) return String(Math.trunc(f(f(r) * 100) + 0.001));
  return String(Math.trunc(f(f(r) * (ext === 'virustest' ? 4 : 9)) + 1.001));
}
