/**
 * Comparators (RFC 4790 via RFC 5228 section 2.7.3: i;octet, i;ascii-casemap,
 * i;ascii-numeric), match types :is :contains :matches (with the captured
 * wildcard values for RFC 5229 ${1}), :regex (draft-ietf-sieve-regex, with
 * the linear-time POSIX ERE matcher of regex.ts, never a JS RegExp) and
 * the relational :value / :count of RFC 5231.
 */

import { compileRegex, execRegex, runBounded, RegexLimitError, RegexSyntaxError, YIELD_STEPS, type CompiledRegex, type Meter, type RegexBudget } from './regex.js';

const MATCHES_LIMIT = 'wildcard match exceeded its step limit';

export type Comparator = 'i;octet' | 'i;ascii-casemap' | 'i;ascii-numeric';
export interface MatchSpec { type: 'is' | 'contains' | 'matches' | 'regex' | 'value' | 'count'; rel?: string; comparator: Comparator }

const fold = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function norm(s: string, cmp: Comparator): string { return cmp === 'i;ascii-casemap' ? fold(s) : s; }

/** i;ascii-numeric: leading digits as an unbounded integer; none = positive infinity. */
function numericKey(s: string): bigint | null {
  const m = /^[0-9]+/.exec(s);
  return m ? BigInt(m[0]) : null;
}

function compare(a: string, b: string, cmp: Comparator): number {
  if (cmp === 'i;ascii-numeric') {
    const x = numericKey(a), y = numericKey(b);
    if (x === null) return y === null ? 0 : 1;
    if (y === null) return -1;
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const x = norm(a, cmp), y = norm(b, cmp);
  return x < y ? -1 : x > y ? 1 : 0;
}

function relation(c: number, rel: string): boolean {
  switch (rel) {
    case 'gt': return c > 0; case 'ge': return c >= 0; case 'lt': return c < 0;
    case 'le': return c <= 0; case 'eq': return c === 0; case 'ne': return c !== 0;
  }
  return false;
}

/**
 * RFC 5228 :matches without regular expressions: the classic glob walk that
 * only ever backtracks the last `*` (O(text × pattern), so a hostile script
 * cannot stall delivery). Each wildcard is as short as the rest allows, as
 * RFC 5229 wants for ${1}...; returns [whole, wildcard values...] or null.
 */
function* globMatch(text: string, pattern: string, cmp: Comparator, limit: number, meter: Meter): Generator<void, string[] | null, void> {
  const tokens: Array<{ k: 'lit'; c: string } | { k: '?' } | { k: '*' }> = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) tokens.push({ k: 'lit', c: pattern[++i] });
    else if (c === '*') tokens.push({ k: '*' });
    else if (c === '?') tokens.push({ k: '?' });
    else tokens.push({ k: 'lit', c });
  }
  const eq = cmp === 'i;ascii-casemap' ? (a: string, b: string) => a === b || fold(a) === fold(b) : (a: string, b: string) => a === b;
  const t = [...text];
  const spans: Array<[number, number]> = [];   // per wildcard, in order
  let i = 0, j = 0;
  let starJ = -1, starI = 0, starSpan = 0;
  let steps = 0;
  while (i < t.length) {
    // a body with a long pattern is still O(text × pattern): in slices, within the run's budget
    if (++steps >= YIELD_STEPS) { meter.used += steps; steps = 0; if (meter.used > limit) throw new RegexLimitError(MATCHES_LIMIT); yield; }
    const tok = tokens[j];
    if (tok && tok.k === '*') {
      starJ = j; starI = i; starSpan = spans.length;
      spans.push([i, i]); j++; continue;
    }
    if (tok && (tok.k === '?' || eq(tok.c, t[i]))) {
      if (tok.k === '?') spans.push([i, i + 1]);
      i++; j++; continue;
    }
    if (starJ < 0) return null;
    // extend the last star by one character and retry what follows it
    starI++;
    spans.length = starSpan + 1;
    spans[starSpan] = [spans[starSpan][0], starI];
    i = starI; j = starJ + 1;
  }
  meter.used += steps;
  while (j < tokens.length && tokens[j].k === '*') { spans.push([i, i]); j++; }
  if (j < tokens.length) return null;
  return [text, ...spans.map(([a, b]) => t.slice(a, b).join(''))];
}
/** Compiled :regex keys, by flags and pattern (scripts are cached, so keys repeat across deliveries). */
const regexCache = new Map<string, CompiledRegex>();
/** Instructions the cache may hold in all (each up to MAX_PROGRAM): its memory stays bounded whatever the scripts. */
const REGEX_CACHE_INSTRUCTIONS = 200_000;
let cachedInstructions = 0;

/**
 * regcomp of a :regex key at run time (a key built from variables; literal
 * keys were checked at compile time). An invalid one is reported with
 * Pigeonhole's runtime error text and never matches, as in Pigeonhole
 * (the script goes on).
 */
async function regexFor(key: string, cmp: Comparator, warn?: (msg: string) => void, budget?: RegexBudget): Promise<CompiledRegex | null> {
  const ck = `${cmp === 'i;ascii-casemap' ? 'i' : 'c'}${key}`;
  let re = regexCache.get(ck);
  if (!re) {
    // building a program costs like running it: charged to the run's budget, and other work gets a turn after each
    if (budget && budget.left <= 0) { warn?.(`regular expression match exceeded its step limit for regex '${sanitize(key, 80)}': no match`); return null; }
    await new Promise<void>((r) => setImmediate(r));
    try { re = compileRegex(key, cmp === 'i;ascii-casemap'); } catch (e) {
      if (e instanceof RegexSyntaxError) { warn?.(regexErrorText(key, e)); return null; }
      throw e;
    }
    while (regexCache.size && cachedInstructions + re.prog.length > REGEX_CACHE_INSTRUCTIONS) {
      const [k, old] = regexCache.entries().next().value!;
      regexCache.delete(k);
      cachedInstructions -= old.prog.length;
    }
    regexCache.set(ck, re);
    cachedInstructions += re.prog.length;
    if (budget) budget.left -= re.prog.length * 10;
  }
  return re;
}

/** Pigeonhole's "invalid regular expression '...' for regex match: ..." with regerror's text lower-cased at the start. */
export function regexErrorText(key: string, e: RegexSyntaxError): string {
  return `invalid regular expression '${sanitize(key, 128)}' for regex match: ${e.message[0].toLowerCase()}${e.message.slice(1)}`;
}

/** Dovecot's str_sanitize: control characters as '?', cut to max bytes with "...". */
export function sanitize(s: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\x00-\x1f]/g, '?');
  if (Buffer.byteLength(clean) <= max) return clean;
  let out = '';
  for (const ch of clean) { if (Buffer.byteLength(out + ch) > max - 3) break; out += ch; }
  return out + '...';
}

/**
 * Does any value match any key? On a :matches/:regex hit, `captures` gets
 * [whole, group1, ...] of the first matching pair (RFC 5229 section 3.2).
 * Async because :regex yields to the event loop while it runs.
 */
export async function matchAny(values: string[], keys: string[], spec: MatchSpec, captures?: (c: string[]) => void, warn?: (msg: string) => void, budget?: RegexBudget): Promise<boolean> {
  if (spec.type === 'count') {
    const n = String(values.length);
    return keys.some((k) => relation(compare(n, k, spec.comparator), spec.rel!));
  }
  for (const v of values) {
    for (const k of keys) {
      switch (spec.type) {
        case 'is': if (compare(v, k, spec.comparator) === 0) return true; break;
        case 'contains': if (norm(v, spec.comparator).includes(norm(k, spec.comparator))) return true; break;
        case 'value': if (relation(compare(v, k, spec.comparator), spec.rel!)) return true; break;
        case 'matches': {
          let m: string[] | null;
          try { m = await runBounded((limit, meter) => globMatch(v, k, spec.comparator, limit, meter), budget); } catch (e) {
            if (!(e instanceof RegexLimitError)) throw e;
            warn?.(`${e.message} for :matches '${sanitize(k, 80)}': no match`);
            m = null;
          }
          if (m) { captures?.(m); return true; }
          break;
        }
        case 'regex': {
          if (spec.comparator === 'i;ascii-numeric') break; // refused at compile time, as in Pigeonhole
          const re = await regexFor(k, spec.comparator, warn, budget);
          if (!re) break;
          let m: string[] | null;
          // past the step limit the key does not match, as a failing regexec() in Pigeonhole
          try { m = await execRegex(re, v, captures !== undefined, budget); } catch (e) {
            if (!(e instanceof RegexLimitError)) throw e;
            warn?.(`${e.message} for regex '${sanitize(k, 80)}': no match`);
            m = null;
          }
          if (m) { captures?.(m); return true; }
          break;
        }
      }
    }
  }
  return false;
}
