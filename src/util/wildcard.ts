/**
 * Wildcard matching without backtracking blow-up, for every place a pattern
 * meets a name: IMAP LIST/LSUB patterns (RFC 3501 §6.3.8 `*` and `%`, with
 * Dovecot's imap_match INBOX case rule, lib-imap/imap-match.c) and
 * Dovecot's wildcard_match masks (`*` and `?`, lib/wildcard-match.c: quota
 * rule masks, doveadm user masks, %{if;…;*;…} in config).
 *
 * Patterns come from clients and users, so this is a Thompson-style
 * simulation of the pattern as a set of positions: each name character
 * advances every live position once. The cost is O(pattern × name) whatever
 * the wildcards, and a pattern needing more literal characters than the name
 * has fails before that. A backtracking RegExp took hours on a long name
 * and a dozen `*`.
 */

/** One pattern position: a literal character, `?` (one character), `*` (any run), `%` (any run without the separator). */
const ONE = -1;
const ANY = -2;
const ANY_NOSEP = -3;

export interface NameMatcher { test(name: string): boolean }

/** Compiled pattern: char codes for literals, negative codes for wildcards. */
class Glob implements NameMatcher {
  private readonly literals: number;
  private readonly cur: Uint8Array;
  private readonly next: Uint8Array;

  /** `seps`: the characters `%` does not cross (usually one hierarchy separator). */
  constructor(private readonly toks: Int32Array, private readonly seps: number[], private readonly inboxcase: boolean) {
    let n = 0;
    for (const t of toks) if (t >= 0 || t === ONE) n++;
    this.literals = n;
    this.cur = new Uint8Array(toks.length + 1);
    this.next = new Uint8Array(toks.length + 1);
  }

  /** Marks `i` and every position reachable from it by a wildcard matching nothing. */
  private static add(set: Uint8Array, toks: Int32Array, i: number): void {
    while (!set[i]) {
      set[i] = 1;
      if (i === toks.length || (toks[i] !== ANY && toks[i] !== ANY_NOSEP)) return;
      i++;
    }
  }

  test(name: string): boolean {
    const toks = this.toks;
    const P = toks.length;
    if (this.literals > name.length) return false;
    // Dovecot: a name beginning with INBOX followed by the separator or its end compares those five characters case-insensitively
    const ciEnd = this.inboxcase && name.length >= 5 && name.slice(0, 5).toUpperCase() === 'INBOX' && (name.length === 5 || this.seps.includes(name.charCodeAt(5))) ? 5 : 0;
    let cur = this.cur;
    let next = this.next;
    cur.fill(0);
    Glob.add(cur, toks, 0);
    for (let k = 0; k < name.length; k++) {
      next.fill(0);
      const c = name.charCodeAt(k);
      const cu = k < ciEnd ? upper(c) : c;
      let live = false;
      for (let i = 0; i < P; i++) {
        if (!cur[i]) continue;
        const t = toks[i];
        if (t === ANY || (t === ANY_NOSEP && !this.seps.includes(c))) { Glob.add(next, toks, i); live = true; } else if (t === ONE || t === c || (k < ciEnd && upper(t) === cu)) { Glob.add(next, toks, i + 1); live = true; }
      }
      if (!live) return false;
      const t = cur; cur = next; next = t;
    }
    return cur[P] === 1;
  }
}

const upper = (c: number): number => (c >= 97 && c <= 122 ? c - 32 : c);

/** Dovecot's pattern_compress: runs of `%` become one, any run with a `*` becomes `*`. */
function compressImap(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== '*' && c !== '%') { out += c; continue; }
    let star = false;
    while (i < pattern.length && (pattern[i] === '*' || pattern[i] === '%')) { if (pattern[i] === '*') star = true; i++; }
    i--;
    out += star ? '*' : '%';
  }
  return out;
}

/** Dovecot's pattern_is_inboxcase: does the (compressed) pattern start with something only an INBOX[sep…] name can match? */
function patternIsInboxcase(p: string, sep: string): boolean {
  const INBOX = 'INBOX';
  let i = 0;
  let b = 0;
  while (b < 5 && i < p.length && p[i].toUpperCase() === INBOX[b]) { i++; b++; }
  if (p[i] !== '%') return p[i] === '*' || p[i] === sep || (b === 5 && i === p.length);
  // 'I%B%X' style: the literals must occur in INBOX in order, and nothing else before the first separator
  for (; i < p.length && p[i] !== '*' && p[i] !== sep; i++) {
    if (p[i] === '%') continue;
    const at = INBOX.indexOf(p[i].toUpperCase(), b);
    if (at < 0) return false;
    b = at + 1;
    if (b === 5) {
      i++;
      if (p[i] === '%') i++;
      return i >= p.length || p[i] === '*' || p[i] === sep;
    }
  }
  return true;
}

/**
 * An IMAP LIST pattern (reference already joined): `*` matches anything,
 * `%` anything but `sep` (each of its characters); with `inboxcase` (LIST, LSUB, imapsieve, doveadm)
 * the INBOX prefix of a name compares case-insensitively when the pattern
 * could only mean INBOX there, as Dovecot's imap_match does.
 */
export function imapPattern(pattern: string, sep: string, inboxcase = true): NameMatcher {
  const p = compressImap(pattern);
  const toks = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) toks[i] = p[i] === '*' ? ANY : p[i] === '%' ? ANY_NOSEP : p.charCodeAt(i);
  return new Glob(toks, Array.from(sep, (c) => c.charCodeAt(0)), inboxcase && [...sep].some((c) => patternIsInboxcase(p, c)));
}

/** Several LIST patterns: a name matches when any does. */
export function imapPatterns(patterns: string[], sep: string): NameMatcher {
  const ms = patterns.map((p) => imapPattern(p, sep));
  return { test: (name) => ms.some((m) => m.test(name)) };
}

/** Dovecot's wildcard_match: `*` any run of characters, `?` exactly one, case-sensitive. */
export function wildcardMask(mask: string): NameMatcher {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) {
    const c = mask[i];
    if (c === '*') { if (out[out.length - 1] !== ANY) out.push(ANY); } else out.push(c === '?' ? ONE : mask.charCodeAt(i));
  }
  return new Glob(Int32Array.from(out), [], false);
}

/** One-off wildcard_match(data, mask). */
export const wildcardMatch = (data: string, mask: string): boolean => wildcardMask(mask).test(data);
