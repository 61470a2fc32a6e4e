/**
 * RFC 5322 / RFC 2045 lexical pieces over a header value (a latin1 string,
 * one char per byte): comments and folding whitespace, atoms, dot-atoms,
 * quoted strings, domains, MIME tokens, Content-Type parameters with RFC
 * 2231 continuations, and address lists. Written to give the same results
 * as Dovecot 2.3's lib-mail parsers on broken input too (checked against the
 * real Dovecot with the differential scripts in test/imap/diff): an address
 * that cannot be parsed becomes MISSING_MAILBOX / MISSING_DOMAIN /
 * SYNTAX_ERROR placeholders, an unterminated quoted string ends the
 * parameter list, names keep their case.
 */

/** atext (RFC 5322 §3.2.3), plus every 8-bit byte as Dovecot accepts. */
function isAtext(c: number): boolean {
  if (c >= 0x80) return true;
  if (c <= 0x20 || c === 0x7f) return false;
  return !'()<>[]:;@\\,."'.includes(String.fromCharCode(c));
}
/** MIME token char: atext without the tspecials '/', '?', '='. */
function isTokenChar(c: number): boolean {
  return isAtext(c) && c !== 0x2f && c !== 0x3f && c !== 0x3d;
}

/** A cursor over one header value; methods return -1 on error, 0 at the end, 1 when more follows. */
export class Rfc822Parser {
  pos = 0;
  /** Text of the last comment skipped (the display name of `user@host (Name)`). */
  lastComment = '';
  constructor(readonly s: string) {}
  get end(): boolean { return this.pos >= this.s.length; }
  ch(): string { return this.s[this.pos] ?? ''; }
  private code(): number { return this.s.charCodeAt(this.pos); }

  skipComment(): number {
    this.lastComment = '';
    let level = 1;
    let start = ++this.pos;
    for (; this.pos < this.s.length; this.pos++) {
      const ch = this.s[this.pos];
      if (ch === '(') level++;
      else if (ch === ')') {
        if (--level === 0) {
          this.lastComment += this.s.slice(start, this.pos);
          this.pos++;
          return this.end ? 0 : 1;
        }
      } else if (ch === '\\') {
        this.lastComment += this.s.slice(start, this.pos);
        start = this.pos + 1;
        this.pos++;
        if (this.end) return -1;
      }
    }
    return -1;
  }

  /** Skips whitespace, line breaks and comments. */
  skipLwsp(): number {
    while (!this.end) {
      const ch = this.ch();
      if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') { this.pos++; continue; }
      if (ch !== '(') break;
      if (this.skipComment() < 0) return -1;
    }
    return this.end ? 0 : 1;
  }

  atom(out: string[]): number {
    if (this.end || !isAtext(this.code())) return -1;
    const start = this.pos++;
    while (!this.end && isAtext(this.code())) this.pos++;
    out.push(this.s.slice(start, this.pos));
    return this.end ? 0 : this.skipLwsp();
  }

  dotAtom(out: string[]): number {
    if (this.end || !isAtext(this.code())) return -1;
    let start = this.pos++;
    let acc = '';
    for (;;) {
      while (!this.end && isAtext(this.code())) this.pos++;
      acc += this.s.slice(start, this.pos);
      if (this.end) { out.push(acc); return 0; }
      const r = this.skipLwsp();
      if (r <= 0 || this.ch() !== '.') { out.push(acc); return r; }
      this.pos++;
      acc += '.';
      const r2 = this.skipLwsp();
      if (r2 <= 0) { out.push(acc); return r2; }
      start = this.pos;
    }
  }

  /** A quoted string without its quotes and escapes; folding line breaks dropped. */
  quoted(out: string[]): number {
    this.pos++;
    let acc = '';
    let start = this.pos;
    for (; this.pos < this.s.length; this.pos++) {
      const ch = this.s[this.pos];
      if (ch === '"') {
        acc += this.s.slice(start, this.pos);
        this.pos++;
        out.push(acc);
        return this.skipLwsp();
      }
      if (ch === '\n') {
        let e = this.pos;
        if (e > start && this.s[e - 1] === '\r') e--;
        acc += this.s.slice(start, e);
        start = this.pos + 1;
      } else if (ch === '\\') {
        acc += this.s.slice(start, this.pos);
        this.pos++;
        if (this.end) return -1;
        start = this.pos;
      }
    }
    return -1;
  }

  private atomOrDot(out: string[]): number {
    const start = this.pos;
    while (!this.end && (isAtext(this.code()) || this.ch() === '.')) this.pos++;
    out.push(this.s.slice(start, this.pos));
    return this.end ? 0 : this.skipLwsp();
  }

  /** phrase = 1*word (obs-phrase: dots allowed); words joined with one space. */
  phrase(out: string[]): number {
    if (this.end) return 0;
    if (this.ch() === '.') return -1;
    const words: string[] = [];
    for (;;) {
      const r = this.ch() === '"' ? this.quoted(words) : this.atomOrDot(words);
      if (r <= 0) { out.push(words.join(' ')); return r; }
      if (!isAtext(this.code()) && this.ch() !== '"' && this.ch() !== '.') break;
    }
    out.push(words.join(' '));
    return this.skipLwsp();
  }

  private domainLiteral(out: string[]): number {
    const start = this.pos;
    for (; this.pos < this.s.length; this.pos++) {
      if (this.ch() === '\\') { this.pos++; if (this.end) break; } else if (this.ch() === ']') {
        this.pos++;
        out.push(this.s.slice(start, this.pos));
        return this.skipLwsp();
      }
    }
    return -1;
  }

  /** After '@': a dot-atom or a [domain literal]. */
  domain(out: string[]): number {
    this.pos++;
    if (this.skipLwsp() <= 0) return -1;
    return this.ch() === '[' ? this.domainLiteral(out) : this.dotAtom(out);
  }

  mimeToken(out: string[]): number {
    const start = this.pos;
    while (!this.end && (isTokenChar(this.code()) || this.ch() === '.')) this.pos++;
    out.push(this.s.slice(start, this.pos));
    return this.end ? 0 : this.skipLwsp();
  }

  /** `; name=value`: [name, value], null at the end, 'error' on broken input. */
  contentParam(): [string, string] | null | 'error' {
    if (this.end) return null;
    if (this.ch() !== ';') return 'error';
    this.pos++;
    if (this.skipLwsp() <= 0) return 'error';
    const key: string[] = [];
    if (this.mimeToken(key) <= 0 || this.ch() !== '=') return 'error';
    this.pos++;
    const val: string[] = [];
    let r = this.skipLwsp();
    if (r <= 0) val.push('');
    else if (this.ch() === '"') r = this.quoted(val);
    else if (this.ch() === '=') {
      // broken input seen in the wild: name==?utf-8?b?...?=
      const start = this.pos;
      while (!this.end && !';\t \r\n'.includes(this.ch())) this.pos++;
      val.push(this.s.slice(start, this.pos));
    } else r = this.mimeToken(val);
    if (r < 0) return 'error';
    return [key[0], val[0] ?? ''];
  }
}

/**
 * Content-Type / Content-Disposition parameters from the parser's position,
 * merged as Dovecot's rfc2231 parser does: plain parameters first, in
 * order; then the `name*N[*]` sections sorted by name and index, each name
 * joined into `name` (or `name*` when a section is extended, plain sections
 * then %-escaped) — or, when an index is missing, listed one by one as
 * `name*N[*]`. A bare `name*` takes the index of the section before it, a
 * quirk kept for identical output. A broken parameter is skipped.
 */
export function parseMimeParams(p: Rfc822Parser): [string, string][] {
  const plain: [string, string][] = [];
  const sections: { key: string; value: string; idx: number; ext: boolean; n: number }[] = [];
  let idx = 0;
  for (;;) {
    const r = p.contentParam();
    if (r === null) break;
    if (r === 'error') { if (p.end) break; p.pos++; continue; }
    const [key, value] = r;
    const star = key.indexOf('*');
    if (star < 0) { plain.push([key, value]); continue; }
    let q = star;
    if (q + 1 < key.length) {
      q++;
      idx = 0;
      while (q < key.length && key[q] >= '0' && key[q] <= '9') idx = idx * 10 + Number(key[q++]);
    }
    const ext = key[q] === '*';
    if (ext) q++;
    if (q < key.length) { plain.push([key, value]); continue; }
    sections.push({ key: key.slice(0, star), value, idx, ext, n: sections.length });
  }
  sections.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.idx - y.idx || x.n - y.n));
  for (let i = 0, next = 0; i < sections.length; i = next) {
    let ok = true;
    let anyExt = false;
    let j = i;
    for (let want = 0; j < sections.length && sections[j].key.toLowerCase() === sections[i].key.toLowerCase(); j++, want++) {
      if (sections[j].idx !== want) ok = false;
      if (sections[j].ext) anyExt = true;
    }
    next = j;
    if (!ok) {
      for (let k = i; k < next; k++) plain.push([`${sections[k].key}*${sections[k].idx}${sections[k].ext ? '*' : ''}`, sections[k].value]);
      continue;
    }
    let v = !sections[i].ext && anyExt ? "''" : '';
    for (let k = i; k < next; k++) v += !sections[k].ext && anyExt ? sections[k].value.replace(/%/g, '%25') : sections[k].value;
    plain.push([anyExt ? `${sections[i].key}*` : sections[i].key, v]);
  }
  return plain;
}

/** `type/subtype` and its parameters, or null when there is no parsable type. */
export function parseContentType(value: string): { type: string; subtype: string; params: [string, string][] } | null {
  const p = new Rfc822Parser(value);
  if (p.skipLwsp() <= 0) return null;
  const t: string[] = [];
  if (p.mimeToken(t) <= 0 || p.ch() !== '/') return null;
  p.pos++;
  if (p.skipLwsp() <= 0) return null;
  const st: string[] = [];
  const r = p.mimeToken(st);
  if (r < 0 || !t[0] || !st[0]) return null;
  return { type: t[0], subtype: st[0], params: parseMimeParams(p) };
}

/** A disposition token and its parameters (null when there is none). */
export function parseDisposition(value: string): { value: string; params: [string, string][] } | null {
  const p = new Rfc822Parser(value);
  p.skipLwsp();
  const t: string[] = [];
  if (p.mimeToken(t) < 0) return null;
  return { value: t[0], params: parseMimeParams(p) };
}

/** A Content-Transfer-Encoding token, or null when the value is not one token. */
export function parseTransferEncoding(value: string): string | null {
  const p = new Rfc822Parser(value);
  p.skipLwsp();
  const t: string[] = [];
  if (p.mimeToken(t) < 0 || p.skipLwsp() !== 0 || !t[0]) return null;
  return t[0];
}

/** Content-Language tags (atoms separated by commas). */
export function parseLanguages(value: string): string[] {
  const p = new Rfc822Parser(value);
  const out: string[] = [];
  p.skipLwsp();
  while (p.atom(out) >= 0) {
    if (p.end || p.ch() !== ',') break;
    p.pos++;
    p.skipLwsp();
  }
  return out;
}

/** IMAP's address structure; a group start has only `mailbox` (the group name), a group end nothing. */
export interface Address { name: string | null; route: string | null; mailbox: string | null; domain: string | null }

/** An address-list as Dovecot parses it for ENVELOPE (missing parts filled with its placeholders). */
export function parseAddressList(value: string): Address[] {
  const p = new Rfc822Parser(value);
  const out: Address[] = [];
  let cur: Address = { name: null, route: null, mailbox: null, domain: null };
  const add = () => { out.push(cur); cur = { name: null, route: null, mailbox: null, domain: null }; };
  const addFixed = () => {
    if (cur.mailbox === null) cur.mailbox = 'MISSING_MAILBOX';
    if (cur.domain === null) cur.domain = 'MISSING_DOMAIN';
    add();
  };
  const localPart = (): number => {
    const o: string[] = [];
    const r = p.ch() === '"' ? p.quoted(o) : p.dotAtom(o);
    if (r < 0) return -1;
    cur.mailbox = o[0];
    return r;
  };
  const domain = (): number => {
    const o: string[] = [];
    const r = p.domain(o);
    if (r < 0) return -1;
    cur.domain = o[0];
    return r;
  };
  const domainList = (): number => {
    const parts: string[] = [];
    for (;;) {
      if (p.end) return 0;
      if (p.ch() !== '@') break;
      const o: string[] = [];
      const r = p.domain(o);
      parts.push(`@${o[0] ?? ''}`);
      if (r <= 0) return r;
      while (p.skipLwsp() > 0 && p.ch() === ',') p.pos++;
    }
    cur.route = parts.join(',');
    return 1;
  };
  const angleAddr = (): number => {
    p.pos++;
    let r = p.skipLwsp();
    if (r <= 0) return r;
    if (p.ch() === '@') {
      if (domainList() <= 0 || p.ch() !== ':') { cur.route = 'INVALID_ROUTE'; return -1; }
      p.pos++;
      r = p.skipLwsp();
      if (r <= 0) return r;
    }
    if (p.ch() === '>') {
      // <> has no address
    } else {
      r = localPart();
      if (r <= 0) return r;
      if (p.ch() === '@') { r = domain(); if (r <= 0) return r; }
    }
    if (p.ch() !== '>') return -1;
    p.pos++;
    return p.skipLwsp();
  };
  const nameAddr = (): number => {
    const o: string[] = [];
    if (p.phrase(o) <= 0 || p.ch() !== '<') return -1;
    cur.name = o[0] ? o[0] : null;
    if (angleAddr() < 0) cur.domain = 'SYNTAX_ERROR';
    return p.end ? 0 : 1;
  };
  const addrSpec = (): number => {
    p.lastComment = '';
    let r = localPart();
    let triedDomain = false;
    if (r !== 0 && p.ch() === '@') {
      triedDomain = true;
      const r2 = domain();
      if (r2 <= 0) r = r2;
    }
    if (p.lastComment) cur.name = p.lastComment;
    else if (!triedDomain && cur.mailbox !== null && !p.end) {
      // a lone word followed by more words is a display name, not a mailbox (`x y@host` → name "x y")
      const o: string[] = [];
      p.phrase(o);
      if (o[0]) { cur.name = `${cur.mailbox} ${o[0]}`; cur.mailbox = null; }
      r = p.end ? 0 : 1;
    }
    return r;
  };
  const mailbox = (): number => {
    const start = p.pos;
    const saved = { ...cur };
    let r = nameAddr();
    if (r < 0) { p.pos = start; cur = saved; r = addrSpec(); }
    addFixed();
    return r;
  };
  const group = (): number => {
    const o: string[] = [];
    if (p.phrase(o) <= 0 || p.ch() !== ':') return -1;
    p.pos++;
    let r = p.skipLwsp();
    cur.mailbox = o[0];
    add();
    if (r > 0 && p.ch() !== ';') {
      for (;;) {
        if (mailbox() <= 0) { r = -1; break; }
        if (p.ch() !== ',') break;
        p.pos++;
        if (p.skipLwsp() <= 0) { r = -1; break; }
      }
    }
    if (r >= 0) {
      if (p.ch() !== ';') r = -1;
      else { p.pos++; r = p.skipLwsp(); }
    }
    add();
    return r === 0 ? 0 : 1;
  };
  if (p.skipLwsp() <= 0) return out;
  for (;;) {
    const start = p.pos;
    let r = group();
    if (r < 0) { p.pos = start; cur = { name: null, route: null, mailbox: null, domain: null }; r = mailbox(); }
    if (r === 0) break;
    if (p.ch() !== ',') break;
    p.pos++;
    const r2 = p.skipLwsp();
    if (r2 <= 0) { if (r2 < 0) addFixed(); break; }
  }
  return out;
}

/** Dovecot's str_append_maybe_escape (message-address.c): as is when all atext (`.` too unless `escapeDot`), else quoted, `"` `\` `'` escaped. */
function maybeEscape(s: string, escapeDot: boolean): string {
  let plain = true;
  for (let i = 0; i < s.length && plain; i++) {
    const c = s.charCodeAt(i);
    if (!isAtext(c) && (escapeDot || c !== 0x2e)) plain = false;
  }
  if (plain) return s;
  return `"${s.replace(/["\\']/g, '\\$&')}"`;
}

/**
 * An address list written back as Dovecot's message_address_write does:
 * `name <route:mailbox@domain>` (name and mailbox quoted when needed, a name
 * with an encoded word as it is), `group: a, b;`, joined by `, `. Dovecot's
 * SEARCH FROM/TO/CC/BCC match this normalised form (index-search.c
 * SEARCH_HEADER_ADDRESS), so comments and odd spacing inside an address do
 * not hide it.
 */
export function writeAddressList(list: Address[]): string {
  if (list.length && list[0].mailbox === null && list[0].domain === null) return '<>';
  let s = '';
  let first = true;
  let inGroup = false;
  for (const a of list) {
    if (first) first = false;
    else s += ', ';
    if (a.domain === null) {
      if (!inGroup) {
        // the start of a group: its name in `mailbox`
        const n = a.mailbox;
        s += n ? (n.includes('=?') ? n : maybeEscape(n, true)) : '""';
        s += ': ';
        first = true;
      } else {
        if (s.endsWith(', ')) s = s.slice(0, -2);
        else if (s.endsWith(': ')) s = s.slice(0, -1);
        s += ';';
      }
      inGroup = !inGroup;
      continue;
    }
    const mailbox = a.mailbox ?? '';
    if (a.name !== null) s += a.name.includes('=?') ? a.name : maybeEscape(a.name, true);
    if (a.route !== null || mailbox !== '' || a.domain !== '') {
      if (a.name) s += ' ';
      s += '<';
      if (a.route !== null) s += `${a.route}:`;
      s += mailbox === '' ? '""' : maybeEscape(mailbox, false);
      if (a.domain !== '') s += `@${a.domain}`;
      s += '>';
    }
  }
  return s;
}
