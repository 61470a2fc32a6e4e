/**
 * Sieve grammar (RFC 5228 section 8.2) into a small AST. Error texts follow
 * Pigeonhole's sieve-parser.c so a broken script reports the same
 * "line N: error: expected ..., but found ..." as sieve-test/sievec.
 */
import { tokenize, describeToken, SieveSyntaxError, type Token } from './lexer.js';

export type Arg =
  | { kind: 'tag'; name: string; line: number }
  | { kind: 'num'; value: number; line: number }
  | { kind: 'str'; values: string[]; list: boolean; line: number; itemLines?: number[] };

export interface Test { name: string; args: Arg[]; tests: Test[]; line: number }
export interface Command extends Test { block: Command[] | null }

/** Parse; throws SieveSyntaxError, or SieveSyntaxErrors when there is more than one. */
export class SieveSyntaxErrors extends Error {
  constructor(readonly list: SieveSyntaxError[]) { super(list.map((e) => e.message).join('\n')); }
}

export function parseScript(src: string): Command[] {
  const lexErrors: SieveSyntaxError[] = [];
  const toks = tokenize(src, lexErrors);
  try {
    const cmds = parseTokens(toks);
    if (lexErrors.length) throw new SieveSyntaxErrors(lexErrors);
    return cmds;
  } catch (e) {
    if (e instanceof SieveSyntaxError && lexErrors.length) throw new SieveSyntaxErrors([...lexErrors, e]);
    throw e;
  }
}

function parseTokens(toks: Token[]): Command[] {
  let p = 0;
  const peek = (): Token => toks[p];
  const next = (): Token => toks[p++];
  const fail = (t: Token, msg: string): never => { throw new SieveSyntaxError(t.line, msg); };

  function stringList(): Arg {
    const open = next();
    const values: string[] = [];
    const itemLines: number[] = [];
    let t = next();
    if (t.type !== 'str') fail(t, `expecting string after '[' in string list, but found ${describeToken(t)}`);
    values.push(t.value);
    itemLines.push(t.line);
    for (;;) {
      t = next();
      if (t.type === ']') break;
      if (t.type !== ',') fail(t, `expecting ',' or end of string list ']', but found ${describeToken(t)}`);
      t = next();
      if (t.type !== 'str') fail(t, `expecting string after ',' in string list, but found ${describeToken(t)}`);
      values.push(t.value);
      itemLines.push(t.line);
    }
    return { kind: 'str', values, list: true, line: open.line, itemLines };
  }

  function args(): { args: Arg[]; tests: Test[] } {
    const out: Arg[] = [];
    for (;;) {
      const t = peek();
      if (t.type === 'tag') { next(); out.push({ kind: 'tag', name: t.value, line: t.line }); }
      else if (t.type === 'num') { next(); out.push({ kind: 'num', value: t.num!, line: t.line }); }
      else if (t.type === 'str') { next(); out.push({ kind: 'str', values: [t.value], list: false, line: t.line }); }
      else if (t.type === '[') out.push(stringList());
      else break;
    }
    const tests: Test[] = [];
    const t = peek();
    if (t.type === 'id') tests.push(test());
    else if (t.type === '(') {
      next();
      let u = peek();
      if (u.type !== 'id') {
        throw new SieveSyntaxErrors([
          new SieveSyntaxError(u.line, `expecting test identifier after '(' in test list, but found ${describeToken(u)}`),
          new SieveSyntaxError(u.line, `failed to accept more tests for command '${toks[p - 2]?.value ?? ''}'`),
        ]);
      }
      tests.push(test());
      for (;;) {
        u = next();
        if (u.type === ')') break;
        if (u.type !== ',') fail(u, `expected ',' or end of test list ')', but found ${describeToken(u)}`);
        const v = peek();
        if (v.type !== 'id') fail(v, `expecting test identifier after ',' in test list, but found ${describeToken(v)}`);
        tests.push(test());
      }
    }
    return { args: out, tests };
  }

  function test(): Test {
    const id = next();
    const a = args();
    return { name: id.value, args: a.args, tests: a.tests, line: id.line };
  }

  function commands(inBlock: boolean): Command[] {
    const out: Command[] = [];
    for (;;) {
      const t = peek();
      if (t.type === 'eof') { if (inBlock) fail(t, `expected end of compound block '}', but found ${describeToken(t)}`); return out; }
      if (t.type === '}') { if (inBlock) return out; fail(t, `unexpected ${describeToken(t)} found at (the presumed) end of file`); }
      if (t.type !== 'id') fail(t, inBlock ? `expected end of compound block '}', but found ${describeToken(t)}` : `unexpected ${describeToken(t)} found at (the presumed) end of file`);
      next();
      const a = args();
      const e = next();
      if (e.type === ';') out.push({ name: t.value, ...a, block: null, line: t.line });
      else if (e.type === '{') {
        const block = commands(true);
        next();
        out.push({ name: t.value, ...a, block, line: t.line });
      } else fail(e, `expected end of command ';' or the beginning of a compound block '{', but found ${describeToken(e)}`);
    }
  }

  return commands(false);
}
