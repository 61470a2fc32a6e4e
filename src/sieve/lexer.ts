/**
 * Sieve lexer (RFC 5228 section 8.1): identifiers, :tags, numbers with K/M/G
 * quantifiers, quoted strings and `text:` multi-line strings, hash and
 * bracket comments. Tokens carry their line so errors read like Pigeonhole's
 * (`script: line N: error: ...`); token descriptions are Pigeonhole's
 * (sieve-lexer.c) so parse errors can be compared with sieve-test's.
 */

export type TokenType = 'id' | 'tag' | 'num' | 'str' | '[' | ']' | '(' | ')' | '{' | '}' | ',' | ';' | 'garbage' | 'eof';

export interface Token { type: TokenType; value: string; num?: number; line: number }

export class SieveSyntaxError extends Error {
  constructor(readonly line: number, message: string) { super(message); }
}

export function describeToken(t: Token): string {
  switch (t.type) {
    case 'eof': return 'end of file';
    case 'id': return `identifier '${t.value}'`;
    case 'tag': return `tag ':${t.value}'`;
    case 'num': return 'number';
    case 'str': return 'string';
    case 'garbage': return 'unknown characters';
    default: return `'${t.type}'`;
  }
}

const QUANT: Record<string, number> = { K: 1024, M: 1024 * 1024, G: 1024 * 1024 * 1024 };

/** Tokens; non-fatal lexical errors (stray characters) are appended to lexErrors. */
export function tokenize(src: string, lexErrors: SieveSyntaxError[] = []): Token[] {
  const out: Token[] = [];
  let i = 0, line = 1;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === '\n') { line++; i++; continue; }
    if (c === ' ' || c === '\t' || c === '\r') { i++; continue; }
    if (c === '#') { while (i < n && src[i] !== '\n') i++; continue; }
    if (c === '/' && src[i + 1] === '*') {
      const start = line;
      i += 2;
      while (i < n && !(src[i] === '*' && src[i + 1] === '/')) { if (src[i] === '\n') line++; i++; }
      if (i >= n) throw new SieveSyntaxError(line, `end of file before end of bracket comment ('/* ... */') started at line ${start}`);
      i += 2; continue;
    }
    if ('[](){},;'.includes(c)) { out.push({ type: c as TokenType, value: c, line }); i++; continue; }
    if (c === '"') {
      const start = line;
      let s = '';
      i++;
      while (i < n && src[i] !== '"') {
        if (src[i] === '\\' && i + 1 < n) { i++; }
        if (src[i] === '\n') line++;
        s += src[i]; i++;
      }
      if (i >= n) throw new SieveSyntaxError(line, `end of file before end of quoted string started at line ${start}`);
      i++;
      // RFC 5228 2.4.2: a bare CR or LF inside a quoted string means CRLF.
      out.push({ type: 'str', value: s.replace(/\r?\n/g, '\r\n'), line: start });
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i; while (j < n && /[0-9]/.test(src[j])) j++;
      let v = Number(src.slice(i, j));
      const q = src[j]?.toUpperCase();
      if (q && QUANT[q]) { v *= QUANT[q]; j++; }
      out.push({ type: 'num', value: src.slice(i, j), num: v, line });
      i = j; continue;
    }
    if (c === ':' && /[A-Za-z_]/.test(src[i + 1] ?? '')) {
      let j = i + 1; while (j < n && /[A-Za-z0-9_]/.test(src[j])) j++;
      out.push({ type: 'tag', value: src.slice(i + 1, j).toLowerCase(), line });
      i = j; continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i; while (j < n && /[A-Za-z0-9_]/.test(src[j])) j++;
      const word = src.slice(i, j);
      if (word.toLowerCase() === 'text' && src[j] === ':') {
        // Multi-line string: rest of the line must be blank/comment, ends at "." alone.
        j++;
        while (j < n && (src[j] === ' ' || src[j] === '\t')) j++;
        if (src[j] === '#') while (j < n && src[j] !== '\n') j++;
        if (src[j] === '\r') j++;
        if (src[j] !== '\n') throw new SieveSyntaxError(line, 'invalid character \'' + (src[j] ?? '') + '\' after \'text:\' in multiline string');
        const start = line;
        j++; line++;
        const lines: string[] = [];
        for (;;) {
          if (j >= n) throw new SieveSyntaxError(line, 'end of file before end of multi-line string');
          let e = src.indexOf('\n', j); if (e < 0) e = n;
          let l = src.slice(j, e); if (l.endsWith('\r')) l = l.slice(0, -1);
          j = e + 1; line++;
          if (l === '.') break;
          lines.push(l.startsWith('..') ? l.slice(1) : l);
        }
        out.push({ type: 'str', value: lines.map((l) => l + '\r\n').join(''), line: start });
        i = j; continue;
      }
      out.push({ type: 'id', value: word.toLowerCase(), line });
      i = j; continue;
    }
    // Pigeonhole reports the character, then the parser trips over the garbage token.
    lexErrors.push(new SieveSyntaxError(line, `unexpected character(s) starting with '${c}'`));
    let j = i + 1;
    while (j < n && !/[\s;{}()[\],"#A-Za-z0-9_:]/.test(src[j])) j++;
    out.push({ type: 'garbage', value: src.slice(i, j), line });
    i = j;
  }
  out.push({ type: 'eof', value: '', line });
  return out;
}
