/**
 * POSIX extended regular expressions for Sieve `:regex`
 * (draft-ietf-sieve-regex) as Pigeonhole runs them: glibc regcomp with
 * REG_EXTENDED (+ REG_ICASE for i;ascii-casemap) in the C locale, so the
 * pattern and the value are bytes. Syntax and error texts are glibc's
 * (checked against regcomp/regerror): bracket expressions with [:class:],
 * [.c.] and [=c=], anchors anywhere, `{m,n}` up to RE_DUP_MAX (32767), `{,n}`,
 * stacked repetitions, an unmatched `)` taken literally, and the GNU escapes
 * \w \W \s \S \b \B \< \> \` \' and back references \1-\9.
 *
 * Why not JavaScript's RegExp: it backtracks, so a user's `(a+)+$` against
 * one ordinary header would hold the event loop for hours. Here the pattern
 * becomes a Thompson NFA run as a Pike VM: every input byte advances each of
 * at most `program size` threads once, so the cost is O(bytes × program)
 * whatever the pattern, and the program size is capped (MAX_PROGRAM). The
 * match is leftmost-longest as POSIX wants; submatches follow the
 * greedy-first thread priority, which is what glibc reports in the cases
 * compared (e.g. `(a|ab)(c|bcd)(d*)` on "abcd" gives "a","bcd",""); a
 * repeated group keeps its last iteration's value, as in glibc.
 *
 * Back references cannot be matched by an automaton; those patterns (rare in
 * Sieve scripts) run in a backtracking search with a step budget. All
 * matchers yield to the event loop every YIELD_STEPS steps and give up after
 * MAX_STEPS (or when the run's shared budget is spent): the key then does not
 * match and an error is logged, as a failing regexec() is a non-match in
 * Pigeonhole; the script goes on.
 */

/** glibc's regerror texts (the ones ERE compilation can produce). */
export const REG_ERR = {
  BADPAT: 'Invalid regular expression',
  BADRPT: 'Invalid preceding regular expression',
  EBRACE: 'Unmatched \\{',
  BADBR: 'Invalid content of \\{\\}',
  ESIZE: 'Regular expression too big',
  ECTYPE: 'Invalid character class name',
  EPAREN: 'Unmatched ( or \\(',
  EBRACK: 'Unmatched [, [^, [:, [., or [=',
  EESCAPE: 'Trailing backslash',
  ESUBREG: 'Invalid back reference',
  ERANGE: 'Invalid range end',
  ECOLLATE: 'Invalid collation character',
} as const;

export class RegexSyntaxError extends Error {}
/** The match ran past its step limit: the caller counts it as no match and reports it. */
export class RegexLimitError extends Error {}

/** RE_DUP_MAX of glibc: a larger count in {m,n} is "Regular expression too big". */
export const RE_DUP_MAX = 0x7fff;
/** Instructions a compiled pattern may have (glibc has no such cap; over it: "Regular expression too big"). */
export const MAX_PROGRAM = 20000;
/** Steps one match may take before it is given up (1-4 s of CPU on a loaded 2-core machine). */
export const MAX_STEPS = 20_000_000;
/** Steps all :regex matches of one script run may take together (RunContext.regexBudget). */
export const MAX_RUN_STEPS = 100_000_000;
/** Steps between yields to the event loop. */
export const YIELD_STEPS = 20000;
/** Pending alternatives of the back-reference search. */
const MAX_BACKTRACK = 100_000;
export const LIMIT = 'regular expression match exceeded its step limit';
/** Pigeonhole's SIEVE_MAX_MATCH_VALUES: ${0}..${31}. */
export const MAX_MATCH_VALUES = 32;

type CharSet = Uint8Array; // 256 entries, 1 = member
type Assertion = 'bol' | 'eol' | 'word' | 'notword' | 'wordstart' | 'wordend';
type Node =
  | { t: 'set'; set: CharSet }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'group'; n: number; body: Node }
  | { t: 'rep'; min: number; max: number; body: Node; slot?: number } // max -1 = unbounded
  | { t: 'assert'; kind: Assertion }
  | { t: 'backref'; n: number };

const enum Op { Char, Split, Jmp, Save, Assert, Backref, Mark, Progress, Match }
type Inst =
  | { op: Op.Char; set: CharSet }
  | { op: Op.Split; x: number; y: number }
  | { op: Op.Jmp; x: number }
  | { op: Op.Save; n: number }
  | { op: Op.Assert; kind: Assertion }
  | { op: Op.Backref; n: number }
  | { op: Op.Mark; slot: number }     // remember where an optional iteration starts
  | { op: Op.Progress; slot: number } // ... and drop it when it consumed nothing
  | { op: Op.Match };

/** slots: 2 per group (with group 0 the whole match) plus one per optional iteration. */
export interface CompiledRegex { prog: Inst[]; groups: number; slots: number; backrefs: boolean }

const isWord = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const CLASSES: Record<string, (c: number) => boolean> = {
  alpha: (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  upper: (c) => c >= 65 && c <= 90,
  lower: (c) => c >= 97 && c <= 122,
  digit: (c) => c >= 48 && c <= 57,
  xdigit: (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
  alnum: (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  space: (c) => c === 32 || (c >= 9 && c <= 13),
  blank: (c) => c === 32 || c === 9,
  punct: (c) => (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126),
  print: (c) => c >= 32 && c <= 126,
  graph: (c) => c >= 33 && c <= 126,
  cntrl: (c) => c < 32 || c === 127,
};

function setOf(pred: (c: number) => boolean): CharSet {
  const s = new Uint8Array(256);
  for (let c = 0; c < 256; c++) if (pred(c)) s[c] = 1;
  return s;
}

/** ERE parser over the pattern's bytes (C locale, as Pigeonhole's regcomp sees it). */
class Parser {
  private i = 0;
  groups = 0;
  private closed = new Set<number>();
  backrefs = false;
  constructor(private readonly p: Buffer, private readonly icase: boolean) {}

  parse(): Node {
    const n = this.alt(0);
    // an unmatched ')' is an ordinary character in glibc's ERE (RE_UNMATCHED_RIGHT_PAREN_ORD)
    return n;
  }

  private alt(depth: number): Node {
    const items = [this.branch(depth)];
    while (this.i < this.p.length && this.p[this.i] === 0x7c /* | */) { this.i++; items.push(this.branch(depth)); }
    return items.length === 1 ? items[0] : { t: 'alt', items };
  }

  private branch(depth: number): Node {
    const items: Node[] = [];
    while (this.i < this.p.length) {
      const c = this.p[this.i];
      if (c === 0x7c) break;
      if (c === 0x29 /* ) */ && depth > 0) break;
      let atom = this.atom(depth);
      // quantifiers; one after nothing or after an anchor is glibc's REG_BADRPT
      for (;;) {
        const q = this.p[this.i];
        if (q !== 0x2a && q !== 0x2b && q !== 0x3f && q !== 0x7b) break;
        if (atom === null || atom.t === 'assert') throw new RegexSyntaxError(REG_ERR.BADRPT);
        this.i++;
        if (q === 0x2a) atom = { t: 'rep', min: 0, max: -1, body: atom };
        else if (q === 0x2b) atom = { t: 'rep', min: 1, max: -1, body: atom };
        else if (q === 0x3f) atom = { t: 'rep', min: 0, max: 1, body: atom };
        else { const [min, max] = this.interval(); atom = { t: 'rep', min, max, body: atom }; }
      }
      if (atom) items.push(atom);
    }
    // a quantifier at the start of a branch lands here as an atom of its own
    return items.length === 1 ? items[0] : { t: 'cat', items };
  }

  /** After `{`: m, m,, m,n or ,n then `}` (glibc's texts for each way it can go wrong). */
  private interval(): [number, number] {
    const close = this.p.indexOf(0x7d, this.i);
    if (close < 0) throw new RegexSyntaxError(REG_ERR.EBRACE);
    const body = this.p.subarray(this.i, close).toString('latin1');
    this.i = close + 1;
    const m = /^([0-9]*)(?:(,)([0-9]*))?$/.exec(body);
    if (!m || (m[1] === '' && !m[2])) throw new RegexSyntaxError(REG_ERR.BADBR);
    const min = m[1] === '' ? 0 : Number(m[1]);
    const max = m[2] ? (m[3] === '' ? -1 : Number(m[3])) : min;
    if (min > RE_DUP_MAX || max > RE_DUP_MAX) throw new RegexSyntaxError(REG_ERR.ESIZE);
    if (max !== -1 && min > max) throw new RegexSyntaxError(REG_ERR.BADBR);
    return [min, max];
  }

  /** One atom, or null for a quantifier character where no atom may stand. */
  private atom(depth: number): Node | null {
    const c = this.p[this.i];
    switch (c) {
      case 0x2a: case 0x2b: case 0x3f: case 0x7b: return null;
      case 0x28: { // (
        this.i++;
        const n = ++this.groups;
        const body = this.p[this.i] === 0x29 ? { t: 'cat', items: [] } as Node : this.alt(depth + 1);
        if (this.p[this.i] !== 0x29) throw new RegexSyntaxError(REG_ERR.EPAREN);
        this.i++;
        this.closed.add(n);
        return { t: 'group', n, body };
      }
      case 0x2e: this.i++; return { t: 'set', set: setOf((x) => x !== 0) };
      case 0x5e: this.i++; return { t: 'assert', kind: 'bol' };
      case 0x24: this.i++; return { t: 'assert', kind: 'eol' };
      case 0x5b: return this.bracket();
      case 0x5c: { // backslash
        this.i++;
        if (this.i >= this.p.length) throw new RegexSyntaxError(REG_ERR.EESCAPE);
        const e = this.p[this.i++];
        if (e >= 0x31 && e <= 0x39) {
          const n = e - 0x30;
          if (!this.closed.has(n)) throw new RegexSyntaxError(REG_ERR.ESUBREG);
          this.backrefs = true;
          return { t: 'backref', n };
        }
        switch (String.fromCharCode(e)) {
          case 'w': return { t: 'set', set: setOf(isWord) };
          case 'W': return { t: 'set', set: setOf((x) => !isWord(x)) };
          case 's': return { t: 'set', set: setOf(CLASSES.space) };
          case 'S': return { t: 'set', set: setOf((x) => !CLASSES.space(x)) };
          case 'b': return { t: 'assert', kind: 'word' };
          case 'B': return { t: 'assert', kind: 'notword' };
          case '<': return { t: 'assert', kind: 'wordstart' };
          case '>': return { t: 'assert', kind: 'wordend' };
          case '`': return { t: 'assert', kind: 'bol' };
          case "'": return { t: 'assert', kind: 'eol' };
        }
        return this.lit(e);
      }
      default: this.i++; return this.lit(c);
    }
  }

  private lit(c: number): Node {
    const s = new Uint8Array(256);
    s[c] = 1;
    return { t: 'set', set: this.fold(s) };
  }

  private fold(s: CharSet): CharSet {
    if (!this.icase) return s;
    for (let c = 65; c <= 90; c++) if (s[c] || s[c + 32]) s[c] = s[c + 32] = 1;
    return s;
  }

  /** `[...]` in the C locale: classes, single-character collating elements and equivalence classes, ranges. */
  private bracket(): Node {
    const p = this.p;
    this.i++;
    const set = new Uint8Array(256);
    let neg = false;
    if (p[this.i] === 0x5e) { neg = true; this.i++; }
    // glibc: nothing at all after `[` or `[^` is REG_BADPAT, not REG_EBRACK
    if (this.i >= p.length) throw new RegexSyntaxError(REG_ERR.BADPAT);
    let first = true;
    for (;;) {
      if (this.i >= p.length) throw new RegexSyntaxError(REG_ERR.EBRACK);
      if (p[this.i] === 0x5d && !first) { this.i++; break; }
      first = false;
      const start = this.element();
      if (p[this.i] === 0x2d && p[this.i + 1] !== 0x5d && this.i + 1 < p.length) {
        this.i++;
        const end = this.element();
        if (typeof start !== 'number' || typeof end !== 'number' || start > end) throw new RegexSyntaxError(REG_ERR.ERANGE);
        for (let c = start; c <= end; c++) set[c] = 1;
      } else if (typeof start === 'number') set[start] = 1;
      else for (let c = 0; c < 256; c++) if (start(c)) set[c] = 1;
    }
    this.fold(set);
    if (neg) for (let c = 0; c < 256; c++) set[c] ^= 1;
    set[0] = 0;
    return { t: 'set', set };
  }

  /** One bracket element: a byte, or a class predicate. */
  private element(): number | ((c: number) => boolean) {
    const p = this.p;
    if (p[this.i] === 0x5b && (p[this.i + 1] === 0x3a || p[this.i + 1] === 0x2e || p[this.i + 1] === 0x3d)) {
      const kind = p[this.i + 1];
      let j = this.i + 2;
      while (j + 1 < p.length && !(p[j] === kind && p[j + 1] === 0x5d)) j++;
      if (j + 1 >= p.length) throw new RegexSyntaxError(REG_ERR.EBRACK);
      const name = p.subarray(this.i + 2, j);
      this.i = j + 2;
      if (kind === 0x3a) {
        const cls = CLASSES[name.toString('latin1')];
        if (!cls) throw new RegexSyntaxError(REG_ERR.ECTYPE);
        // REG_ICASE: [:upper:] and [:lower:] both mean letters, as in glibc
        return this.icase && (name.toString('latin1') === 'upper' || name.toString('latin1') === 'lower') ? CLASSES.alpha : cls;
      }
      if (name.length !== 1) throw new RegexSyntaxError(REG_ERR.ECOLLATE);
      return name[0];
    }
    return p[this.i++];
  }
}

/** Instructions a node compiles to, stopping early once over the cap. */
function size(n: Node): number {
  switch (n.t) {
    case 'set': case 'assert': case 'backref': return 1;
    case 'cat': { let s = 0; for (const x of n.items) { s += size(x); if (s > MAX_PROGRAM) return s; } return s; }
    case 'alt': { let s = 0; for (const x of n.items) { s += size(x) + 2; if (s > MAX_PROGRAM) return s; } return s; }
    case 'group': return size(n.body) + 2;
    case 'rep': {
      const b = size(n.body);
      const copies = n.max === -1 ? n.min + 1 : n.max;
      return Math.min(MAX_PROGRAM + 1, copies * (b + 4) + 1);
    }
  }
}

/**
 * An optional iteration (past {m}, or of * and +) that matches the empty
 * string is not taken: glibc reports the previous, non-empty iteration's
 * submatches then (`(a|()){1,2}` on "a" gives "a" for group 1).
 */
function optional(rep: Extract<Node, { t: 'rep' }>, prog: Inst[], slots: { n: number }): void {
  // one slot per repetition in the pattern: its copies never overlap within a thread
  const slot = rep.slot ??= slots.n++;
  const body = rep.body;
  prog.push({ op: Op.Mark, slot });
  emit(body, prog, slots);
  prog.push({ op: Op.Progress, slot });
}

function emit(n: Node, prog: Inst[], slots: { n: number }): void {
  switch (n.t) {
    case 'set': prog.push({ op: Op.Char, set: n.set }); return;
    case 'assert': prog.push({ op: Op.Assert, kind: n.kind }); return;
    case 'backref': prog.push({ op: Op.Backref, n: n.n }); return;
    case 'cat': for (const x of n.items) emit(x, prog, slots); return;
    case 'group':
      prog.push({ op: Op.Save, n: 2 * n.n });
      emit(n.body, prog, slots);
      prog.push({ op: Op.Save, n: 2 * n.n + 1 });
      return;
    case 'alt': {
      const jumps: Array<{ op: Op.Jmp; x: number }> = [];
      for (let k = 0; k < n.items.length; k++) {
        if (k < n.items.length - 1) {
          const split = { op: Op.Split, x: prog.length + 1, y: 0 } as { op: Op.Split; x: number; y: number };
          prog.push(split);
          emit(n.items[k], prog, slots);
          const j = { op: Op.Jmp, x: 0 } as { op: Op.Jmp; x: number };
          prog.push(j); jumps.push(j);
          split.y = prog.length;
        } else emit(n.items[k], prog, slots);
      }
      for (const j of jumps) j.x = prog.length;
      return;
    }
    case 'rep': {
      for (let k = 0; k < n.min; k++) emit(n.body, prog, slots);
      if (n.max === -1) {
        // greedy loop: L: split(body, out); body; jmp L
        const l = prog.length;
        const split = { op: Op.Split, x: l + 1, y: 0 } as { op: Op.Split; x: number; y: number };
        prog.push(split);
        optional(n, prog, slots);
        prog.push({ op: Op.Jmp, x: l });
        split.y = prog.length;
        return;
      }
      const splits: Array<{ op: Op.Split; x: number; y: number }> = [];
      for (let k = n.min; k < n.max; k++) {
        const split = { op: Op.Split, x: prog.length + 1, y: 0 } as { op: Op.Split; x: number; y: number };
        prog.push(split); splits.push(split);
        optional(n, prog, slots);
      }
      for (const s of splits) s.y = prog.length;
      return;
    }
  }
}

/**
 * The compile-time check alone (syntax and size, no program built): what a
 * script's validation needs, so a script with many large keys costs
 * ManageSieve's PUTSCRIPT only a parse of each.
 */
export function validateRegex(pattern: string, icase: boolean): { parser: Parser; ast: Node } {
  const parser = new Parser(Buffer.from(pattern, 'utf8'), icase);
  const ast = parser.parse();
  if (size(ast) + 3 > MAX_PROGRAM) throw new RegexSyntaxError(REG_ERR.ESIZE);
  return { parser, ast };
}

/** regcomp(REG_EXTENDED [| REG_ICASE]); throws RegexSyntaxError with glibc's regerror text. */
export function compileRegex(pattern: string, icase: boolean): CompiledRegex {
  const { parser, ast } = validateRegex(pattern, icase);
  const prog: Inst[] = [{ op: Op.Save, n: 0 }];
  const slots = { n: 2 * (parser.groups + 1) };
  emit(ast, prog, slots);
  prog.push({ op: Op.Save, n: 1 }, { op: Op.Match });
  return { prog, groups: parser.groups, slots: slots.n, backrefs: parser.backrefs };
}

function assertHolds(kind: Assertion, s: Buffer, i: number): boolean {
  const before = i > 0 && isWord(s[i - 1]);
  const after = i < s.length && isWord(s[i]);
  switch (kind) {
    case 'bol': return i === 0;
    case 'eol': return i === s.length;
    case 'word': return before !== after;
    case 'notword': return before === after;
    case 'wordstart': return !before && after;
    case 'wordend': return before && !after;
  }
}

/** Steps a match has taken so far. */
export interface Meter { used: number }
/** Steps left for all the matches of one script run (shared by its :regex tests). */
export interface RegexBudget { left: number }

/** Byte offsets [start, end] per group (-1 = unset), or null; a generator so the caller can yield in between. */
type Steps = Generator<void, Int32Array | null, void>;

/** Pike VM, leftmost-longest: O(bytes × instructions). */
function* pike(re: CompiledRegex, s: Buffer, limit: number, meter: Meter): Steps {
  const { prog } = re;
  const nslots = re.slots;
  const mark = new Int32Array(prog.length).fill(-1);
  let gen = 0;
  let steps = 0;
  let clist: Array<{ pc: number; caps: Int32Array }> = [];
  let nlist: Array<{ pc: number; caps: Int32Array }> = [];
  let best: Int32Array | null = null;
  const stack: Array<{ pc: number; caps: Int32Array }> = [];

  // epsilon closure from pc at position i into list (generation g), in priority order
  const add = (list: typeof clist, g: number, pc0: number, caps0: Int32Array, i: number) => {
    stack.push({ pc: pc0, caps: caps0 });
    while (stack.length) {
      const { pc, caps } = stack.pop()!;
      if (mark[pc] === g) continue;
      mark[pc] = g;
      steps++;
      const ins = prog[pc];
      switch (ins.op) {
        case Op.Jmp: stack.push({ pc: ins.x, caps }); break;
        case Op.Split: stack.push({ pc: ins.y, caps }, { pc: ins.x, caps }); break;
        case Op.Save: { const c = caps.slice(); c[ins.n] = i; stack.push({ pc: pc + 1, caps: c }); break; }
        case Op.Mark: { const c = caps.slice(); c[ins.slot] = i; stack.push({ pc: pc + 1, caps: c }); break; }
        case Op.Progress: if (caps[ins.slot] !== i) stack.push({ pc: pc + 1, caps }); break;
        case Op.Assert: if (assertHolds(ins.kind, s, i)) stack.push({ pc: pc + 1, caps }); break;
        default: list.push({ pc, caps });
      }
    }
  };

  for (let i = 0; i <= s.length; i++) {
    const g = gen;
    if (!best) add(clist, g, 0, new Int32Array(nslots).fill(-1), i);
    if (!clist.length) { if (best) break; gen++; continue; }
    gen++;
    const c = s[i];
    for (const th of clist) {
      if (best && th.caps[0] > best[0]) continue; // a later start can no longer win
      const ins = prog[th.pc];
      if (ins.op === Op.Match) {
        if (!best || th.caps[0] < best[0] || (th.caps[0] === best[0] && th.caps[1] > best[1])) best = th.caps;
      } else if (ins.op === Op.Char && i < s.length && ins.set[c]) add(nlist, gen, th.pc + 1, th.caps, i + 1);
      if (++steps >= YIELD_STEPS) { meter.used += steps; steps = 0; if (meter.used > limit) throw new RegexLimitError(LIMIT); yield; }
    }
    [clist, nlist] = [nlist, clist];
    nlist.length = 0;
  }
  meter.used += steps;
  return best;
}

/**
 * Does the pattern match anywhere? The same automaton without submatches
 * (regcomp's REG_NOSUB, what Pigeonhole uses when no ${N} is wanted): states
 * as a set of instruction numbers, stops at the first match.
 */
function* pikeAny(re: CompiledRegex, s: Buffer, limit: number, meter: Meter): Steps {
  const { prog } = re;
  const mark = new Int32Array(prog.length).fill(-1);
  let clist = new Int32Array(prog.length), nlist = new Int32Array(prog.length);
  let cn = 0, nn = 0;
  const stack = new Int32Array(prog.length * 2 + 2);
  let steps = 0;
  let matched = false;
  // epsilon closure from pc at position i into the list; true once Match is reachable
  const add = (list: Int32Array, len: number, g: number, pc0: number, i: number): number => {
    let sp = 0;
    stack[sp++] = pc0;
    while (sp) {
      const pc = stack[--sp];
      if (mark[pc] === g) continue;
      mark[pc] = g;
      steps++;
      const ins = prog[pc];
      switch (ins.op) {
        case Op.Jmp: stack[sp++] = ins.x; break;
        case Op.Split: stack[sp++] = ins.y; stack[sp++] = ins.x; break;
        case Op.Save: case Op.Mark: case Op.Progress: stack[sp++] = pc + 1; break;
        case Op.Assert: if (assertHolds(ins.kind, s, i)) stack[sp++] = pc + 1; break;
        case Op.Match: matched = true; break;
        default: list[len++] = pc;
      }
    }
    return len;
  };
  let gen = 0;
  for (let i = 0; i <= s.length; i++) {
    cn = add(clist, cn, gen, 0, i);
    if (matched) break;
    if (i === s.length) break;
    gen++;
    const c = s[i];
    nn = 0;
    for (let k = 0; k < cn; k++) {
      const ins = prog[clist[k]] as { op: Op.Char; set: CharSet };
      if (ins.set[c]) nn = add(nlist, nn, gen, clist[k] + 1, i + 1);
      if (++steps >= YIELD_STEPS) { meter.used += steps; steps = 0; if (meter.used > limit) throw new RegexLimitError(LIMIT); yield; }
    }
    if (matched) break;
    [clist, nlist] = [nlist, clist];
    cn = nn;
  }
  meter.used += steps;
  if (!matched) return null;
  return new Int32Array(re.slots).fill(-1);
}

/** Backtracking search for patterns with back references (no automaton can match those), under the same step budget. */
function* backtrack(re: CompiledRegex, s: Buffer, limit: number, meter: Meter): Steps {
  const { prog } = re;
  const nslots = re.slots;
  let steps = 0;
  let best: Int32Array | null = null;
  for (let start = 0; start <= s.length && !best; start++) {
    // explicit stack of (pc, i, caps) alternatives; every path is explored so the longest wins
    const stack: Array<{ pc: number; i: number; caps: Int32Array }> = [{ pc: 0, i: start, caps: new Int32Array(nslots).fill(-1) }];
    while (stack.length) {
      let { pc, i, caps } = stack.pop()!;
      for (;;) {
        if (++steps >= YIELD_STEPS) { meter.used += steps; steps = 0; if (meter.used > limit) throw new RegexLimitError(LIMIT); yield; }
        const ins = prog[pc];
        if (ins.op === Op.Match) { if (!best || caps[1] > best[1]) best = caps; break; }
        if (ins.op === Op.Char) { if (i < s.length && ins.set[s[i]]) { i++; pc++; continue; } break; }
        if (ins.op === Op.Jmp) { pc = ins.x; continue; }
        if (ins.op === Op.Split) {
          // a loop whose body matches empty would push forever: bounded like the steps
          if (stack.length >= MAX_BACKTRACK) throw new RegexLimitError(LIMIT);
          stack.push({ pc: ins.y, i, caps }); pc = ins.x; continue;
        }
        if (ins.op === Op.Save) { caps = caps.slice(); caps[ins.n] = i; pc++; continue; }
        if (ins.op === Op.Mark) { caps = caps.slice(); caps[ins.slot] = i; pc++; continue; }
        if (ins.op === Op.Progress) { if (caps[ins.slot] !== i) { pc++; continue; } break; }
        if (ins.op === Op.Assert) { if (assertHolds(ins.kind, s, i)) { pc++; continue; } break; }
        // Backref: the group's bytes again (compared exactly, also under REG_ICASE)
        const a = caps[2 * ins.n], b = caps[2 * ins.n + 1];
        if (a < 0 || b < 0) break;
        const len = b - a;
        if (i + len > s.length || !s.subarray(a, b).equals(s.subarray(i, i + len))) break;
        i += len; pc++;
      }
    }
  }
  meter.used += steps;
  return best;
}

/**
 * regexec: [whole, group1, ...] (unset groups as '') or null; without
 * `submatches` only whether it matches (the strings are then empty). Yields to the
 * event loop between slices; RegexLimitError past MAX_STEPS.
 */
export async function execRegex(re: CompiledRegex, value: string, submatches = true, budget?: RegexBudget): Promise<string[] | null> {
  const s = Buffer.from(value, 'utf8');
  const caps = await runBounded((limit, meter) => (re.backrefs ? backtrack(re, s, limit, meter) : submatches ? pike(re, s, limit, meter) : pikeAny(re, s, limit, meter)), budget);
  if (!caps) return null;
  const out: string[] = [];
  for (let g = 0; g <= re.groups && g < MAX_MATCH_VALUES; g++) {
    const a = caps[2 * g], b = caps[2 * g + 1];
    out.push(a >= 0 && b >= 0 ? s.subarray(a, b).toString('utf8') : '');
  }
  return out;
}

/**
 * Drive a stepping matcher (regex or :matches glob) to its end: other work
 * runs between its slices, its steps are charged to the run's budget, and
 * it may take at most MAX_STEPS (RegexLimitError past that).
 */
export async function runBounded<T>(start: (limit: number, meter: Meter) => Generator<void, T, void>, budget?: RegexBudget): Promise<T> {
  const meter: Meter = { used: 0 };
  const it = start(Math.min(MAX_STEPS, budget?.left ?? Infinity), meter);
  let charged = 0;
  for (;;) {
    let r: IteratorResult<void, T>;
    try { r = it.next(); } finally { if (budget) { budget.left -= meter.used - charged; charged = meter.used; } }
    if (r.done) return r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}
