/**
 * Modified UTF-7 mailbox names (RFC 3501 §5.1.3), the form Dovecot stores
 * Maildir folder names in (unless `:UTF-8`) and the IMAP wire form.
 * `&` is written `&-`; other non-printable-ASCII runs become `&<base64 of
 * UTF-16BE with , for />-`. Decoding is strict like Dovecot's: invalid input
 * is rejected rather than guessed.
 */

function b64Encode(units: number[]): string {
  const buf = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => buf.writeUInt16BE(u, i * 2));
  return buf.toString('base64').replace(/=+$/, '').replace(/\//g, ',');
}

export function utf8ToMutf7(name: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = () => {
    if (pending.length) { out += '&' + b64Encode(pending) + '-'; pending = []; }
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) {
      flush();
      out += c === 0x26 ? '&-' : name[i];
    } else {
      pending.push(c);
    }
  }
  flush();
  return out;
}

function wellFormed(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(k + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      k++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

export class Mutf7Error extends Error {}

export function mutf7ToUtf8(name: string): string {
  let out = '';
  let i = 0;
  while (i < name.length) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new Mutf7Error(`mailbox name is not valid mUTF-7 (8-bit or control character at offset ${i})`);
    if (name[i] !== '&') { out += name[i]; i++; continue; }
    const end = name.indexOf('-', i + 1);
    if (end < 0) throw new Mutf7Error('mailbox name is not valid mUTF-7 (unterminated &…- sequence)');
    const b64 = name.slice(i + 1, end);
    i = end + 1;
    if (b64 === '') { out += '&'; continue; }
    if (!/^[A-Za-z0-9+,]+$/.test(b64)) throw new Mutf7Error('mailbox name is not valid mUTF-7 (bad base64)');
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    if (bytes.length % 2 !== 0 || bytes.length === 0) throw new Mutf7Error('mailbox name is not valid mUTF-7 (odd UTF-16 length)');
    let seg = '';
    for (let k = 0; k < bytes.length; k += 2) seg += String.fromCharCode(bytes.readUInt16BE(k));
    // must not encode printable ASCII, must be well-formed UTF-16, must round-trip
    if (utf8ToMutf7(seg) !== '&' + b64 + '-') throw new Mutf7Error('mailbox name is not valid mUTF-7 (non-canonical encoding)');
    if (!wellFormed(seg)) throw new Mutf7Error('mailbox name is not valid mUTF-7 (broken UTF-16 surrogates)');
    out += seg;
  }
  return out;
}

export function isValidMutf7(name: string): boolean {
  try { mutf7ToUtf8(name); return true; } catch { return false; }
}
