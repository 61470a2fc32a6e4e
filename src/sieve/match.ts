/**
 * Comparators (RFC 4790 via RFC 5228 section 2.7.3: i;octet, i;ascii-casemap,
 * i;ascii-numeric), match types :is :contains :matches (with the captured
 * wildcard values for RFC 5229 ${1}), :regex (draft-ietf-sieve-regex) and
 * the relational :value / :count of RFC 5231.
 */

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
function globMatch(text: string, pattern: string, cmp: Comparator): string[] | null {
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
  while (i < t.length) {
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
  while (j < tokens.length && tokens[j].k === '*') { spans.push([i, i]); j++; }
  if (j < tokens.length) return null;
  return [text, ...spans.map(([a, b]) => t.slice(a, b).join(''))];
}
const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Does any value match any key? On a :matches/:regex hit, `captures` gets
 * [whole, group1, ...] of the first matching pair (RFC 5229 section 3.2).
 */
export function matchAny(values: string[], keys: string[], spec: MatchSpec, captures?: (c: string[]) => void): boolean {
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
          const m = globMatch(v, k, spec.comparator);
          if (m) { captures?.(m); return true; }
          break;
        }
        case 'regex': {
          let r: RegExp;
          try { r = new RegExp(k, spec.comparator === 'i;ascii-casemap' ? 'i' : ''); } catch { break; }
          const m = r.exec(v);
          if (m) { captures?.([...m].map((x) => x ?? '')); return true; }
          break;
        }
      }
    }
  }
  return false;
}
