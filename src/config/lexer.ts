/**
 * One logical line of Dovecot's main configuration language, as
 * config-parser.c (2.3) splits it: comment stripping that respects quotes
 * (warning on an ambiguous '#'), backslash continuation, and the statement
 * forms `key = value`, `key = <file`, `type [name] {`, `}`, `!include[_try]`.
 * Pure functions over strings: file access lives in parser.ts/include.ts.
 */

export type Statement =
  | { kind: 'skip' }
  | { kind: 'continue' }
  | { kind: 'keyvalue'; key: string; value: string }
  | { kind: 'keyfile'; key: string; path: string }
  | { kind: 'keyvariable'; key: string; value: string }
  | { kind: 'section'; type: string; name: string }
  | { kind: 'end' }
  | { kind: 'include'; pattern: string; tryOnly: boolean }
  | { kind: 'error'; reason: string };

const isWhite = (c: string | undefined) => c === ' ' || c === '\t';

/** Resolve backslash escapes as Dovecot's str_unescape(): `\x` → `x`. */
export function unescape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) i++;
    out += s[i];
  }
  return out;
}

export class LineLexer {
  /** Text accumulated by `\` continuations. */
  private pending = '';

  /**
   * Feed one physical line (without its line end). `warn` receives warnings
   * such as the ambiguous '#'. Returns the statement it completes, if any.
   */
  feed(raw: string, warn: (msg: string) => void): Statement {
    let line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    let i = 0;
    while (isWhite(line[i])) i++;
    line = line.slice(i);
    if (line === '' || line[0] === '#') {
      // A blank or comment line also ends a continuation and drops its text
      // without a word: Dovecot's quirk, kept so both read a tree the same way.
      this.pending = '';
      return { kind: 'skip' };
    }
    // Strip a comment: '#' outside quotes.
    for (let p = 0; p < line.length; p++) {
      const c = line[p];
      if (c === '"' || c === "'") {
        p++;
        while (p < line.length && line[p] !== c) {
          if (line[p] === '\\' && p + 1 < line.length) p++;
          p++;
        }
        if (p >= line.length) break;
      } else if (c === '#') {
        if (!isWhite(line[p - 1])) {
          warn("Ambiguous '#' character in line, treating it as comment. Add a space before it to remove this warning.");
        }
        line = line.slice(0, p);
        break;
      }
    }
    let len = line.length;
    while (len > 0 && isWhite(line[len - 1])) len--;
    line = line.slice(0, len);

    if (line.endsWith('\\')) {
      let l = line.length - 1;
      while (l > 0 && isWhite(line[l - 1])) l--;
      if (l > 0) this.pending += line.slice(0, l) + ' ';
      return { kind: 'continue' };
    }
    if (this.pending) {
      line = this.pending + line;
      this.pending = '';
    }
    return parseStatement(line);
  }
}

/** Classify a complete, comment-free, trimmed line (config_parse_line). */
export function parseStatement(line: string): Statement {
  let p = 0;
  while (p < line.length && !isWhite(line[p]) && line[p] !== '=') p++;
  const key = line.slice(0, p);
  while (isWhite(line[p])) p++;
  let rest = line.slice(p);

  if (key === '!include') return { kind: 'include', pattern: rest, tryOnly: false };
  if (key === '!include_try') return { kind: 'include', pattern: rest, tryOnly: true };

  if (rest[0] === '=') {
    rest = rest.slice(1);
    let q = 0;
    while (isWhite(rest[q])) q++;
    rest = rest.slice(q);
    if (rest[0] === '<') {
      let r = 1;
      while (isWhite(rest[r])) r++;
      return { kind: 'keyfile', key, path: rest.slice(r) };
    }
    if (rest[0] !== "'" && rest[0] !== '"' && rest.includes('$')) return { kind: 'keyvariable', key, value: rest };
    const n = rest.length;
    if (n > 0 && ((rest[0] === '"' && rest[n - 1] === '"') || (rest[0] === "'" && rest[n - 1] === "'"))) {
      // A lone quote character is both first and last: Dovecot yields "".
      rest = unescape(rest.slice(1, Math.max(1, n - 1)));
    }
    return { kind: 'keyvalue', key, value: rest };
  }

  if (key === '}' && rest === '') return { kind: 'end' };

  let name = '';
  if (rest[0] !== '{') {
    if (rest[0] !== '"') {
      let e = 0;
      while (e < rest.length && !isWhite(rest[e])) e++;
      name = rest.slice(0, e);
      rest = rest.slice(e);
      let w = 0;
      while (isWhite(rest[w])) w++;
      rest = rest.slice(w);
    } else {
      let e = 1;
      while (e < rest.length && rest[e] !== '"') e++;
      if (rest[e] === '"') {
        name = unescape(rest.slice(1, e));
        rest = rest.slice(e + 1);
        let w = 0;
        while (isWhite(rest[w])) w++;
        rest = rest.slice(w);
      } else {
        name = rest.slice(1);
        rest = '';
      }
    }
    if (rest[0] !== '{') return { kind: 'error', reason: "Expecting '{'" };
  }
  if (rest.length > 1) return { kind: 'error', reason: "Garbage after '{'" };
  return { kind: 'section', type: key, name };
}
