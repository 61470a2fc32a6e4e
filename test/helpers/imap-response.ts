/**
 * A small IMAP response reader for test clients (RFC 3501 §7, §9): splits a
 * byte stream into whole responses (a line with its literals) and parses one
 * into values — atoms, quoted strings, literals (as Buffers), NIL and
 * parenthesised lists — with a FETCH item name such as `BODY[HEADER.FIELDS (A B)]<0>`
 * kept as one atom. Enough to follow what a server says about a mailbox;
 * anything it cannot parse is thrown as an error naming the response.
 */

export type Value = string | Buffer | null | Value[];

/** One complete response: its text (literals replaced by `{n}`) and the literal bytes in order. */
export interface RawResponse { text: string; literals: Buffer[] }

/** Collects bytes; `next()` returns a complete response once one is there. */
export class ResponseSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private text = '';
  private literals: Buffer[] = [];
  /** Bytes of the literal being waited for (-1: reading a line). */
  private want = -1;

  push(b: Buffer): void { this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b; }

  next(): RawResponse | null {
    for (;;) {
      if (this.want >= 0) {
        if (this.buf.length < this.want) return null;
        this.literals.push(this.buf.subarray(0, this.want));
        this.buf = this.buf.subarray(this.want);
        this.want = -1;
        continue;
      }
      const i = this.buf.indexOf('\r\n');
      if (i < 0) return null;
      const line = this.buf.subarray(0, i).toString('latin1');
      this.buf = this.buf.subarray(i + 2);
      const m = /~?\{(\d+)\}$/.exec(line);
      if (m) {
        this.text += line + '\r\n';
        this.want = Number(m[1]);
        continue;
      }
      const out = { text: this.text + line, literals: this.literals };
      this.text = '';
      this.literals = [];
      return out;
    }
  }
}

/** Parse the values of a response (after `* ` or the tag); literals come from `r.literals`. */
export function parseValues(r: RawResponse, from = 0): Value[] {
  const s = r.text;
  let pos = from;
  let lit = 0;
  const fail = (why: string): never => { throw new Error(`cannot parse response (${why} at ${pos}): ${s.slice(0, 300)}`); };
  const value = (): Value => {
    const c = s[pos];
    if (c === '(') {
      pos++;
      const items: Value[] = [];
      for (;;) {
        while (s[pos] === ' ') pos++;
        if (pos >= s.length) fail('unclosed list');
        if (s[pos] === ')') { pos++; return items; }
        items.push(value());
      }
    }
    if (c === '"') {
      let out = '';
      pos++;
      while (pos < s.length && s[pos] !== '"') {
        if (s[pos] === '\\') pos++;
        out += s[pos++];
      }
      if (s[pos] !== '"') fail('unterminated string');
      pos++;
      return out;
    }
    if (c === '{' || (c === '~' && s[pos + 1] === '{')) {
      const end = s.indexOf('}\r\n', pos);
      if (end < 0) fail('bad literal');
      pos = end + 3;
      if (lit >= r.literals.length) fail('missing literal');
      return r.literals[lit++];
    }
    // an atom; brackets (FETCH section specs, response codes) may hold spaces and parens
    let out = '';
    let depth = 0;
    while (pos < s.length) {
      const ch = s[pos];
      if (depth === 0 && (ch === ' ' || ch === ')' || ch === '(' || ch === '\r')) break;
      if (ch === '[') depth++;
      else if (ch === ']') depth--;
      out += ch;
      pos++;
    }
    if (!out) fail('empty atom');
    return out.toUpperCase() === 'NIL' ? null : out;
  };
  const out: Value[] = [];
  while (pos < s.length) {
    while (s[pos] === ' ') pos++;
    if (pos >= s.length) break;
    out.push(value());
  }
  return out;
}

/** A FETCH response's item list as a map from upper-cased item name to value. */
export function fetchItems(list: Value): Map<string, Value> {
  if (!Array.isArray(list) || list.length % 2) throw new Error(`bad FETCH item list: ${JSON.stringify(list)}`);
  const m = new Map<string, Value>();
  for (let i = 0; i < list.length; i += 2) m.set(String(list[i]).toUpperCase(), list[i + 1]);
  return m;
}

/** Expand a UID/sequence set ("1:3,7") into numbers (no `*`). */
export function expandSet(set: string): number[] {
  const out: number[] = [];
  for (const part of set.split(',')) {
    const [a, b] = part.split(':').map(Number);
    if (!Number.isInteger(a) || (b !== undefined && !Number.isInteger(b))) throw new Error(`bad set ${set}`);
    const [lo, hi] = b === undefined ? [a, a] : [Math.min(a, b), Math.max(a, b)];
    for (let n = lo; n <= hi; n++) out.push(n);
  }
  return out;
}

/** Numbers as a compact set ("1:3,7"). */
export function compactSet(ns: number[]): string {
  const s = [...new Set(ns)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    parts.push(i === j ? `${s[i]}` : `${s[i]}:${s[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
