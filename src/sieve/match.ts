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

function globRegex(pattern: string, cmp: Comparator): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) { re += escapeRe(pattern[++i]); continue; }
    if (c === '*') re += '([\\s\\S]*?)';
    else if (c === '?') re += '([\\s\\S])';
    else re += escapeRe(c);
  }
  return new RegExp('^' + re + '$', cmp === 'i;ascii-casemap' ? 'i' : '');
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
          const m = globRegex(k, spec.comparator).exec(v);
          if (m) { captures?.([...m].map((x) => x ?? '')); return true; }
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
