/**
 * RFC 5322 address lists (groups included) split into IMAP's address
 * structure (name, adl, mailbox, host), as ENVELOPE shows them and as SORT's
 * FROM/TO/CC/DISPLAYFROM keys read the first address (RFC 5256, RFC 5957).
 * Lenient like Dovecot's parser: comments dropped, quotes and route removed.
 */

export interface Addr { name: string | null; adl: null; mailbox: string | null; host: string | null }

/** RFC 2822 address-list (groups included) in IMAP's address structure. */
export function parseAddresses(v: string): Addr[] {
  const out: Addr[] = [];
  const s = v.replace(/\r?\n/g, '');
  let i = 0;
  const tokens: string[] = [];
  let cur = '';
  let depthAngle = 0;
  let inQ = false;
  let comment = 0;
  for (; i < s.length; i++) {
    const c = s[i];
    if (inQ) { cur += c; if (c === '\\') cur += s[++i] ?? ''; else if (c === '"') inQ = false; continue; }
    if (comment) { if (c === '(') comment++; else if (c === ')') comment--; continue; }
    if (c === '"') { inQ = true; cur += c; continue; }
    if (c === '(') { comment = 1; continue; }
    if (c === '<') depthAngle++;
    if (c === '>') depthAngle = Math.max(0, depthAngle - 1);
    if ((c === ',' || c === ';' || c === ':') && depthAngle === 0) {
      tokens.push(cur); tokens.push(c); cur = ''; continue;
    }
    cur += c;
  }
  tokens.push(cur);
  const one = (t: string): Addr | null => {
    const x = t.trim();
    if (!x) return null;
    const m = /^(.*?)<([^>]*)>\s*$/.exec(x);
    const spec = (m ? m[2] : x).trim().replace(/^@[^:]*:/, '');
    let name: string | null = m ? m[1].trim() : null;
    if (name && name.startsWith('"') && name.endsWith('"')) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
    if (name === '') name = null;
    const at = spec.lastIndexOf('@');
    return { name, adl: null, mailbox: at >= 0 ? spec.slice(0, at) : spec || null, host: at >= 0 ? spec.slice(at + 1) : null };
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t === ',' || t === ';') continue;
    if (tokens[k + 1] === ':') {
      out.push({ name: null, adl: null, mailbox: t.trim(), host: null }); // group start
      k++;
      continue;
    }
    const a = one(t);
    if (a) out.push(a);
    if (tokens[k + 1] === ';') out.push({ name: null, adl: null, mailbox: null, host: null }); // group end
  }
  return out;
}
