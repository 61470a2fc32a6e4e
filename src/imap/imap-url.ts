/**
 * IMAP URLs (RFC 5092, with RFC 5550's URL-PARTIAL `;PARTIAL=offset.size`)
 * as Dovecot 2.3's imap-url.c parses them for CATENATE: relative URLs only
 * (an `imap://` or `//host` URL is refused once its server part parses),
 * resolved against the selected mailbox (its name and UIDVALIDITY) with the
 * same path rules and the same error texts, `;URLAUTH=`/`;EXPIRE=` refused
 * ("not allowed in this context"). One left-to-right pass over the string
 * with index arithmetic: no regular expression sees the client's text. Every
 * error carries the offset where the parser stood, for tests and logs (the
 * client sees only Dovecot's text).
 */

/** What a message-part URL names. `mailbox` is the IMAP (mUTF-7) name as in the URL. */
export interface ImapUrl {
  mailbox: string | null;
  uidValidity: number;
  uid: number;
  section: string | null;
  havePartial: boolean;
  partialOffset: number;
  /** 0: to the end. */
  partialSize: number;
  searchProgram: string | null;
}

/** The URL a relative one is resolved against: the selected mailbox, or nothing. */
export interface ImapUrlBase { mailbox: string | null; uidValidity: number }

export type ImapUrlResult = { ok: true; url: ImapUrl } | { ok: false; error: string; offset: number };

class UrlError extends Error {
  constructor(readonly text: string, readonly offset: number) { super(text); }
}

const UNRESERVED = 1, SUB_DELIMS = 2, PCHAR_EXTRA = 8, QCHAR_EXTRA = 32 | 64;
/** RFC 3986 character classes (the table Dovecot's uri-util.c uses for ASCII). */
const CLASS = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) CLASS[c] |= UNRESERVED;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] |= UNRESERVED;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] |= UNRESERVED;
for (const ch of '-._~') CLASS[ch.charCodeAt(0)] |= UNRESERVED;
for (const ch of "!$&'()*+,;=") CLASS[ch.charCodeAt(0)] |= SUB_DELIMS;
for (const ch of ':@') CLASS[ch.charCodeAt(0)] |= PCHAR_EXTRA;
for (const ch of '/?') CLASS[ch.charCodeAt(0)] |= QCHAR_EXTRA;
const PCHAR = UNRESERVED | SUB_DELIMS | PCHAR_EXTRA;
const QCHAR = PCHAR | QCHAR_EXTRA;

const isClass = (c: number, mask: number) => c < 0x80 && (CLASS[c] & mask) !== 0;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const hexValue = (c: number) => (isDigit(c) ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1);
/** Dovecot's URI_MAX_SCHEME_NAME_LEN. */
const MAX_SCHEME = 64;

/** Case-insensitive ASCII prefix test. */
function startsWithCi(s: string, at: number, prefix: string): boolean {
  if (s.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const a = s.charCodeAt(at + i) | (isAlpha(s.charCodeAt(at + i)) ? 0x20 : 0);
    if (a !== (prefix.charCodeAt(i) | (isAlpha(prefix.charCodeAt(i)) ? 0x20 : 0))) return false;
  }
  return true;
}

/** Dovecot's str_sanitize(s, 80) for the texts that quote a segment. */
function sanitize(s: string, max = 80): string {
  let out = '';
  for (const ch of s) out += ch.charCodeAt(0) < 0x20 ? '?' : ch;
  return out.length <= max ? out : `${out.slice(0, max - 3)}...`;
}

class Parser {
  pos = 0;
  constructor(readonly s: string) {}

  fail(text: string, at = this.pos): never { throw new UrlError(text, at); }

  /** `%XX` at `p` (the `%`): the byte, checked as uri-util.c does; returns the index after it. */
  pct(p: number, until: number): [number, number] {
    // two characters must follow the '%'
    if (p + 2 >= until) this.fail("Unexpected URI boundary after '%'", p);
    const h = hexValue(this.s.charCodeAt(p + 1));
    if (h < 0) this.fail(`Expecting hex digit after '%', but found '${this.s[p + 1]}'`, p + 1);
    const l = hexValue(this.s.charCodeAt(p + 2));
    if (l < 0) this.fail(`Expecting hex digit after '%${this.s[p + 1]}', but found '${this.s[p + 2]}'`, p + 2);
    const b = (h << 4) | l;
    if (b === 0) this.fail('Percent encoding is not allowed to encode NUL character', p);
    return [b, p + 3];
  }

  /** Characters of `mask` (and valid %XX) from the current position; returns where they end. */
  run(mask: number): number {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x25) { this.pos = this.pct(this.pos, s.length)[1]; continue; }
      if (!isClass(c, mask)) break;
      this.pos++;
    }
    return this.pos;
  }

  /** uri_data_decode of s[from..to): %XX decoded (the bytes are latin1 chars, as the wire gave them). */
  decode(from: number, to: number): string {
    let out = '';
    let run = from;
    for (let i = from; i < to;) {
      if (this.s.charCodeAt(i) === 0x25) {
        out += this.s.slice(run, i);
        const [b, next] = this.pct(i, this.s.length);
        out += String.fromCharCode(b);
        i = next;
        run = i;
      } else i++;
    }
    return out + this.s.slice(run, to);
  }
}

/** `number` (RFC 3501) as imap-url.c reads it: digits within 32 bits. `at` is where the value starts. */
function number32(p: Parser, v: string, at: number): number {
  if (!isDigit(v.charCodeAt(0))) p.fail(`Value '${v}' is not a valid IMAP number`, at);
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    if (!isDigit(v.charCodeAt(i))) p.fail('IMAP number is too high', at);
    n = n * 10 + (v.charCodeAt(i) - 0x30);
    if (n > 0xffffffff) p.fail('IMAP number is too high', at);
  }
  return n;
}

/** A PARTIAL offset or size (uoff_t: 63 bits). */
function number63(p: Parser, v: string, at: number): number {
  if (!isDigit(v.charCodeAt(0))) p.fail(`Value '${v}' is not a valid IMAP number`, at);
  for (let i = 0; i < v.length; i++) if (!isDigit(v.charCodeAt(i))) p.fail('IMAP number is too high', at);
  if (BigInt(v) > 0x7fffffffffffffffn) p.fail('IMAP number is too high', at);
  return Number(v);
}

/** `//` authority: Dovecot checks it (so its errors come first), then refuses it in CATENATE. */
function parseServer(p: Parser): boolean {
  const s = p.s;
  if (!(s.charCodeAt(p.pos) === 0x2f && s.charCodeAt(p.pos + 1) === 0x2f)) return false;
  p.pos += 2;
  const start = p.pos;
  let end = start;
  while (end < s.length && s[end] !== '/' && s[end] !== '?' && s[end] !== '#') end++;
  const auth = s.slice(start, end);
  const at = auth.lastIndexOf('@');
  const hostPort = at >= 0 ? auth.slice(at + 1) : auth;
  const host = hostPort.startsWith('[') ? hostPort.slice(0, hostPort.indexOf(']') + 1) : hostPort.split(':')[0];
  if (host === '') p.fail('IMAP URL does not allow empty host identifier', start);
  if (at >= 0) {
    const user = auth.slice(0, at);
    const semi = user.indexOf(';');
    const colon = user.indexOf(':');
    if (colon >= 0 && (semi < 0 || colon < semi)) p.fail(`Stray ':' in userinfo \`${user}'`, start + colon);
    if (semi >= 0) {
      if (!startsWithCi(user, semi, ';AUTH=')) p.fail(`Stray ';' in userinfo \`${user}'`, start + semi);
      for (let i = semi + 6; i < user.length; i++) {
        if (user[i] === ';' || user[i] === ':') p.fail(`Stray '${user[i]}' in userinfo \`${user}'`, start + i);
      }
      if (semi + 6 === user.length) p.fail("Empty auth-type value after ';AUTH='", start + semi);
    }
  }
  p.pos = end;
  return true;
}

/** One path segment's text and where it starts in the URL. */
interface Segment { text: string; at: number }

/** uri_parse_path: segments with `.` and `..` resolved; `relative` counts the levels a relative path climbs (0: absolute). */
function parsePath(p: Parser): { relative: number; segments: Segment[] | null } {
  const s = p.s;
  const begin = p.pos;
  let relative = 1;
  if (s.charCodeAt(p.pos) === 0x2f) { p.pos++; relative = 0; }
  const segs: Segment[] = [];
  let last: Segment | null = null;
  for (;;) {
    const from = p.pos;
    p.run(PCHAR);
    if (p.pos < s.length && s[p.pos] !== '/' && s[p.pos] !== '?' && s[p.pos] !== '#') p.fail('Path component contains invalid character');
    const text = s.slice(from, p.pos);
    last = { text, at: from };
    if (text === '..') {
      last = null;
      if (segs.length) segs.pop();
      else if (relative > 0) relative++;
    } else if (text === '.') last = null;
    if (last) segs.push(last);
    if (p.pos >= s.length || s[p.pos] !== '/') break;
    p.pos++;
  }
  if (p.pos === begin) return { relative, segments: null };
  // a trailing `.` or `..` leaves the path ending in `/`
  if (!last) segs.push({ text: '', at: p.pos });
  return { relative, segments: segs };
}

/** The `;EXPIRE=`/`;URLAUTH=` tail of a message-part URL: never allowed here (Dovecot parses without IMAP_URL_PARSE_ALLOW_URLAUTH). */
function urlExtension(p: Parser, ext: string, at: number): never {
  if (startsWithCi(ext, 0, ';EXPIRE=')) p.fail("`;EXPIRE=' is not allowed in this context", at);
  if (startsWithCi(ext, 0, ';URLAUTH=')) p.fail("`;URLAUTH=' is not allowed in this context", at);
  p.fail(`Unrecognized IMAP URL extension: ${sanitize(ext)}`, at);
}

/**
 * imap_url_parse_path: the mailbox (its segments glued back with `/`),
 * `;UIDVALIDITY=`, `;UID=`, `;SECTION=` (may hold `/`), `;PARTIAL=`, with
 * what a relative path keeps of the base.
 */
function parseIcommand(p: Parser, path: Segment[] | null, relative: number, base: ImapUrlBase): ImapUrl & { messageList: boolean } {
  let mailbox = '';
  let mailboxEndSlash = false;
  let uidValidity = 0;
  let uid = 0;
  let section: string | null = null;
  let havePartial = false;
  let partialOffset = 0;
  let partialSize = 0;
  let ext: { text: string; at: number } | null = null;

  // what a relative path keeps of the base (a mailbox and its UIDVALIDITY: CATENATE's base has no UID or section)
  if (relative > 0 && base.mailbox !== null) {
    let rel = relative;
    const mb = base.mailbox;
    uidValidity = base.uidValidity;
    let q = mb.length;
    // the mailbox has an implicit trailing '/'
    if (mb[q - 1] !== '/' && rel > 0) rel--;
    for (; q > 0 && rel > 0; q--) {
      if (mb[q] === '/') {
        uidValidity = 0;
        if (--rel <= 0) break;
      }
    }
    if (--rel <= 0 && q > 0) {
      if (mb[q - 1] === '/') mailboxEndSlash = true;
      mailbox = mb.slice(0, q);
    }
  }

  if (path !== null) {
    let k = 0;
    const seg = (): Segment | undefined => path[k];
    if (relative === 0 || section === null) {
      let semi = -1;
      while (k < path.length) {
        semi = path[k].text.indexOf(';');
        if (semi >= 0) break;
        if (path[k].text !== '') {
          if (k > 0 || (!mailboxEndSlash && mailbox.length > 0)) mailbox += '/';
          mailbox += p.decode(path[k].at, path[k].at + path[k].text.length);
          mailboxEndSlash = false;
        }
        k++;
      }
      if (semi >= 0) {
        const s = path[k];
        if (startsWithCi(s.text, semi, ';UIDVALIDITY=')) {
          if (semi > 0) {
            if (k > 0 || (!mailboxEndSlash && mailbox.length > 0)) mailbox += '/';
            mailbox += p.decode(s.at, s.at + semi);
          }
          const v = s.text.slice(semi + 13);
          if (v.includes(';')) p.fail("Encountered stray ';' after UIDVALIDITY", s.at + semi + 13 + v.indexOf(';'));
          if (v === '') p.fail('Empty UIDVALIDITY value', s.at + semi + 13);
          uidValidity = number32(p, v, s.at + semi + 13);
          if (uidValidity === 0) p.fail('UIDVALIDITY cannot be zero', s.at + semi + 13);
          k++;
        } else if (semi !== 0) {
          p.fail("Encountered stray ';' in mailbox reference", s.at + semi);
        }
      }
      const u = seg();
      if (u && startsWithCi(u.text, 0, ';UID=')) {
        let v = u.text.slice(5);
        const semiU = v.indexOf(';');
        if (semiU >= 0) {
          if (k + 1 < path.length) p.fail("Encountered stray ';' in UID path segment", u.at + 5 + semiU);
          ext = { text: v.slice(semiU), at: u.at + 5 + semiU };
          v = v.slice(0, semiU);
        }
        if (v === '') p.fail('Empty UID value', u.at + 5);
        uid = number32(p, v, u.at + 5);
        if (uid === 0) p.fail('UID cannot be zero', u.at + 5);
        k++;
      }
    }

    if (k < path.length && uid > 0) {
      const first = path[k];
      if (section !== null || startsWithCi(first.text, 0, ';SECTION=')) {
        let sec = '';
        let sectionEndSlash = false;
        let vAt = first.at + 9;
        let v = first.text.slice(9);
        let semi = -1;
        // a section may hold '/': segments are joined until one holds ';'
        while ((semi = v.indexOf(';')) < 0) {
          if (!sectionEndSlash && sec.length > 0) sec += '/';
          if (v !== '') { sec += p.decode(vAt, vAt + v.length); sectionEndSlash = false; }
          k++;
          if (k >= path.length) break;
          v = path[k].text;
          vAt = path[k].at;
        }
        if (semi > 0) {
          if (k + 1 < path.length) p.fail("Encountered stray ';' in SECTION path segment", vAt + semi);
          ext = { text: v.slice(semi), at: vAt + semi };
          if (!sectionEndSlash && sec.length > 0) sec += '/';
          sec += p.decode(vAt, vAt + semi);
          k++;
        }
        if (sec.length === 0) p.fail('Empty SECTION value', first.at + 9);
        section = sec;
      }
      const pa = seg();
      if (pa && startsWithCi(pa.text, 0, ';PARTIAL=')) {
        havePartial = true;
        let v = pa.text.slice(9);
        const semiP = v.indexOf(';');
        if (semiP >= 0) { ext = { text: v.slice(semiP), at: pa.at + 9 + semiP }; v = v.slice(0, semiP); }
        if (v === '') p.fail('Empty PARTIAL value', pa.at + 9);
        const dot = v.indexOf('.');
        if (dot >= 0) {
          if (dot + 1 === v.length) p.fail('Empty PARTIAL size', pa.at + 9 + dot + 1);
          partialSize = number63(p, v.slice(dot + 1), pa.at + 9 + dot + 1);
          if (partialSize === 0) p.fail('PARTIAL size cannot be zero', pa.at + 9 + dot + 1);
          v = v.slice(0, dot);
          if (v === '') p.fail('Empty PARTIAL offset', pa.at + 9);
        }
        partialOffset = number63(p, v, pa.at + 9);
        k++;
      }
    }

    const rest = seg();
    if (rest && (ext !== null || rest.text !== '' || k + 1 < path.length)) {
      p.fail(`Unexpected IMAP URL path segment: \`${sanitize(rest.text)}'`, rest.at);
    }
  }
  if (ext !== null) urlExtension(p, ext.text, ext.at);
  return {
    mailbox: mailbox.length > 0 ? mailbox : null, uidValidity, uid, section, havePartial, partialOffset, partialSize,
    searchProgram: null, messageList: uid === 0,
  };
}

/**
 * Parse a CATENATE URL (IMAP_URL_PARSE_REQUIRE_RELATIVE) against `base`.
 * The error texts are Dovecot's; CATENATE prefixes them with "Invalid IMAP URL: ".
 */
export function parseRelativeImapUrl(text: string, base: ImapUrlBase): ImapUrlResult {
  const p = new Parser(text);
  try {
    // "imap:" — a scheme only if letters/digits/+-. run into ':'
    let haveScheme = false;
    if (isAlpha(text.charCodeAt(0))) {
      let i = 1;
      while (i < MAX_SCHEME && i < text.length && (isAlpha(text.charCodeAt(i)) || isDigit(text.charCodeAt(i)) || '+-.'.includes(text[i]))) i++;
      if (text[i] === ':') {
        if (text.slice(0, i).toLowerCase() !== 'imap') p.fail('Not an IMAP URL', 0);
        haveScheme = true;
        p.pos = i + 1;
      }
    }
    const server = parseServer(p);
    if (haveScheme && !server) p.fail("Absolute IMAP URL requires `//' after `imap:'");
    if (server) p.fail('Relative URL required', 0);
    const { relative, segments } = parsePath(p);
    const url = parseIcommand(p, segments, relative, base);
    if (p.pos < text.length && text[p.pos] === '?') {
      p.pos++;
      const from = p.pos;
      p.run(QCHAR);
      if (p.pos < text.length && text[p.pos] !== '#') p.fail('Query component contains invalid character');
      if (!url.messageList) p.fail('Search query part only valid for messagelist-type IMAP URL', from - 1);
      if (p.pos === from) p.fail('Empty IMAP URL search query not allowed', from - 1);
      url.searchProgram = p.decode(from, p.pos);
    }
    if (p.pos < text.length && text[p.pos] === '#') {
      const from = p.pos;
      p.pos++;
      p.run(QCHAR);
      if (p.pos < text.length) p.fail('Fragment component contains invalid character');
      p.fail('Fragment component not allowed in IMAP URL', from);
    }
    const { messageList: _ml, ...rest } = url;
    void _ml;
    return { ok: true, url: rest };
  } catch (e) {
    if (e instanceof UrlError) return { ok: false, error: e.text, offset: e.offset };
    throw e;
  }
}
