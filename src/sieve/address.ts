/**
 * Pigeonhole's check of an address a script gives to `redirect` and to
 * vacation's :from / :addresses (sieve-address.c, sieve_address_validate):
 * one RFC 5322 mailbox, `addr-spec` or `phrase <addr-spec>`, with LWSP and
 * comments around the tokens and nothing after it. Its error texts are
 * Pigeonhole's, so a script refused by sievec is refused here with the same
 * line. This is what keeps a CR/LF in a script from becoming a second SMTP
 * command (`RCPT TO:`) or a header (`Bcc:`) in the reply: after the address,
 * "\r\nRCPT TO:<...>" is "address ends in invalid characters".
 */

const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\uffff]/;

class AddressParser {
  i = 0;
  error = '';
  localPart = '';
  domain = '';
  constructor(readonly s: string) {}

  private fail(msg: string): -1 { if (!this.error) this.error = msg; return -1; }

  /** rfc822_skip_lwsp: spaces, tabs, CR, LF and (nested) comments; 1 = more input, 0 = end, -1 = broken comment. */
  skipLwsp(): number {
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') { this.i++; continue; }
      if (c !== '(') break;
      let depth = 0;
      for (; this.i < s.length; this.i++) {
        const d = s[this.i];
        if (d === '\\') { this.i++; continue; }
        if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
      }
      if (this.i >= s.length) return -1;
      this.i++;
    }
    return this.i < s.length ? 1 : 0;
  }

  /** rfc822_parse_atom: at least one atext character, then LWSP. */
  atom(out: { v: string }): number {
    const start = this.i;
    while (this.i < this.s.length && ATEXT.test(this.s[this.i])) this.i++;
    if (this.i === start) return -1;
    out.v += this.s.slice(start, this.i);
    return this.skipLwsp();
  }

  /** rfc822_parse_quoted_string: "..." with backslash escapes, then LWSP. */
  quoted(out: { v: string }): number {
    const s = this.s;
    this.i++;
    for (; this.i < s.length; this.i++) {
      const c = s[this.i];
      if (c === '"') { this.i++; return this.skipLwsp(); }
      if (c === '\\' && this.i + 1 < s.length) { out.v += s[++this.i]; continue; }
      if (c === '\r' || c === '\n') continue; // folding inside the string
      out.v += c;
    }
    return -1;
  }

  /** rfc822_parse_phrase: words (atoms, quoted strings, obs-phrase dots). */
  phrase(): number {
    const out = { v: '' };
    let ret = this.s[this.i] === '"' ? this.quoted(out) : this.atom(out);
    if (ret <= 0) return ret;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '"') ret = this.quoted(out);
      else if (c === '.') { this.i++; ret = this.skipLwsp(); }
      else if (ATEXT.test(c)) ret = this.atom(out);
      else break;
      if (ret <= 0) return ret;
    }
    return 1;
  }

  /** parse_local_part: quoted string or atoms with dots anywhere (Pigeonhole allows odd dots). */
  localPartSpec(): number {
    if (this.i >= this.s.length) return this.fail('empty local part');
    const out = { v: '' };
    let ret = -1;
    if (this.s[this.i] === '"') ret = this.quoted(out);
    else {
      do {
        while (this.s[this.i] === '.') {
          out.v += '.'; this.i++;
          if (this.i >= this.s.length) { this.localPart = out.v; return 0; }
          ret = 1;
        }
        if (this.s[this.i] === '@') break;
        ret = this.atom(out);
      } while (ret > 0 && this.s[this.i] === '.');
    }
    this.localPart = out.v;
    // eslint-disable-next-line no-control-regex
    if (ret < 0 || /[^\x20-\x7e]/.test(out.v)) return this.fail('invalid local part');
    return ret;
  }

  /** rfc822_parse_domain: "@" then a dot-atom or a [domain-literal]. */
  domainSpec(): number {
    this.i++; // '@'
    if (this.skipLwsp() <= 0) return this.fail('invalid or missing domain');
    const out = { v: '' };
    let ret: number;
    if (this.s[this.i] === '[') {
      const end = this.s.indexOf(']', this.i);
      if (end < 0) return this.fail('invalid or missing domain');
      out.v = this.s.slice(this.i, end + 1);
      this.i = end + 1;
      ret = this.skipLwsp();
    } else {
      ret = this.atom(out);
      while (ret > 0 && this.s[this.i] === '.') {
        out.v += '.'; this.i++;
        if (this.skipLwsp() <= 0) return this.fail('invalid or missing domain');
        ret = this.atom(out);
      }
      if (ret < 0) return this.fail('invalid or missing domain');
    }
    this.domain = out.v;
    return ret;
  }

  addrSpec(): number {
    const ret = this.localPartSpec();
    if (ret < 0) return ret;
    if (ret > 0 && this.s[this.i] === '@') return this.domainSpec();
    return this.fail(`invalid or lonely local part '${this.localPart.slice(0, 80)}' (expecting '@')`);
  }

  mailbox(): number {
    const start = this.i;
    if (this.phrase() <= 0 || this.s[this.i] !== '<') { this.i = start; this.error = ''; return this.addrSpec(); }
    this.i++;
    const r = this.skipLwsp();
    if (r <= 0) { if (r < 0) this.fail('invalid characters after <'); return r < 0 ? -1 : this.fail("missing '>'"); }
    if (this.addrSpec() < 0) return -1;
    if (this.s[this.i] !== '>') return this.fail("missing '>'");
    this.i++;
    const e = this.skipLwsp();
    return e < 0 ? this.fail('address ends with invalid characters') : e;
  }
}

/**
 * sieve_address_parse: the addr-spec of one valid mailbox (what redirect
 * sends to: `Name (c) <a@b>` is a@b, a local part that needs it quoted),
 * or Pigeonhole's reason it is not one.
 */
export function parseSieveAddress(s: string): { address: string } | { error: string } {
  const p = new AddressParser(s);
  p.skipLwsp();
  if (p.i >= s.length) return { error: 'empty address' };
  if (p.mailbox() < 0) return { error: p.error || 'invalid address' };
  if (p.i < s.length) return { error: s[p.i] === ',' ? "not a single address (found ',')" : 'address ends in invalid characters' };
  if (!p.domain) return { error: 'missing domain' };
  if (!p.localPart) return { error: 'missing local part' };
  const dotAtom = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/.test(p.localPart);
  const local = dotAtom ? p.localPart : `"${p.localPart.replace(/["\\]/g, '\\$&')}"`;
  return { address: `${local}@${p.domain}` };
}

/** sieve_address_validate: null when `s` is one valid mailbox, else Pigeonhole's reason. */
export function sieveAddressError(s: string): string | null {
  const r = parseSieveAddress(s);
  return 'error' in r ? r.error : null;
}
