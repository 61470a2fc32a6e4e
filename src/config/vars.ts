/**
 * Dovecot 2.3's %-variable expander (lib/var-expand.c): short `%u` and long
 * `%{user}` names, `[-][0]offset.width` substrings, modifiers `L U E X R H N
 * M D T`, `%{if;…}` conditionals, `%{md5:var}`-style hash functions,
 * `%{env:NAME}`. Every expanded value passes through `escape` (how SQL
 * drivers escape `'%u'`); the template text itself is never escaped. An
 * unknown variable expands to `UNSUPPORTED_VARIABLE_<name>` and is reported,
 * as Dovecot does. The 2.4 pipe syntax (`%{user | lower}`) is not 2.3 and is
 * treated as an unknown variable.
 */
import { createHash } from 'node:crypto';
import { wildcardMatch } from '../util/wildcard.js';

export type VarTable = Record<string, string | undefined>;

export interface ExpandOptions {
  escape?: (s: string) => string;
  env?: NodeJS.ProcessEnv;
}

export interface ExpandResult { value: string; errors: string[] }

const SHORT: Record<string, string> = {
  u: 'user', n: 'username', d: 'domain', h: 'home', w: 'password', s: 'service', r: 'rip', l: 'lip',
  p: 'pid', m: 'mech', a: 'lport', b: 'rport', c: 'secured', k: 'cert', i: 'uid', g: 'gid', e: 'mail_pid',
};

/** Dovecot's str_hash() (the ELF hash), used by %H. */
function strHash(s: string): number {
  let h = 0;
  for (const b of Buffer.from(s, 'utf8')) {
    h = ((h << 4) + b) >>> 0;
    const g = h & 0xf0000000;
    if (g !== 0) {
      h = (h ^ (g >>> 24)) >>> 0;
      h = (h ^ g) >>> 0;
    }
  }
  return h;
}

function ldapDn(v: string): string {
  // "%D": example.org → dc=example,dc=org
  return v.split('.').map((p) => `dc=${p}`).join(',');
}

type Modifier = (v: string, width: number) => string;
const MODIFIERS: Record<string, Modifier> = {
  L: (v) => v.toLowerCase(),
  U: (v) => v.toUpperCase(),
  E: (v) => v.replace(/[\\'"]/g, '\\$&'),
  X: (v) => (/^\d+$/.test(v) ? BigInt(v).toString(16) : v),
  R: (v) => [...v].reverse().join(''),
  H: (v, width) => { const h = strHash(v); return (width ? h % width : h).toString(16); },
  N: (v, width) => { const h = createHash('md5').update(v).digest().readUInt32BE(0); return (width ? h % width : h).toString(16); },
  M: (v) => createHash('md5').update(v).digest('hex'),
  D: ldapDn,
  T: (v) => v.replace(/[ \t]+$/, ''),
};

/** Fill username/domain from user where the table lacks them. */
export function withDerivedNames(vars: VarTable): VarTable {
  const out: VarTable = { ...vars };
  const u = vars.user;
  if (u !== undefined) {
    const at = u.indexOf('@');
    out.username ??= at < 0 ? u : u.slice(0, at);
    out.domain ??= at < 0 ? '' : u.slice(at + 1);
  }
  const o = vars.orig_user;
  if (o !== undefined) {
    const at = o.indexOf('@');
    out.orig_username ??= at < 0 ? o : o.slice(0, at);
    out.orig_domain ??= at < 0 ? '' : o.slice(at + 1);
  }
  return out;
}

/** Split conditional arguments on unescaped ';'. */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) { cur += s[++i]; continue; }
    if (c === '{') depth++;
    if (c === '}') depth--;
    if (c === ';' && depth === 0) { out.push(cur); cur = ''; continue; }
    cur += c;
  }
  out.push(cur);
  return out;
}

function compare(l: string, op: string, r: string): boolean | null {
  const ln = Number(l);
  const rn = Number(r);
  switch (op) {
    case 'eq': return ln === rn;
    case 'ne': return ln !== rn;
    case 'lt': return ln < rn;
    case 'le': return ln <= rn;
    case 'gt': return ln > rn;
    case 'ge': return ln >= rn;
    case '==': return l === r;
    case '!=': return l !== r;
    case '<': return l < r;
    case '<=': return l <= r;
    case '>': return l > r;
    case '>=': return l >= r;
    case '*': return wildcardMatch(l, r);
    case '!*': return !wildcardMatch(l, r);
    case '~': return new RegExp(r).test(l);
    case '!~': return !new RegExp(r).test(l);
    default: return null;
  }
}

class Expander {
  readonly errors: string[] = [];
  constructor(private readonly vars: VarTable, private readonly opts: ExpandOptions) {}

  private lookupLong(name: string): string | undefined {
    if (name.startsWith('env:')) return (this.opts.env ?? process.env)[name.slice(4)] ?? '';
    const colon = name.indexOf(':');
    if (colon > 0) {
      const fn = name.slice(0, colon).split(';')[0];
      const arg = name.slice(colon + 1);
      if (['md5', 'sha1', 'sha256', 'sha512'].includes(fn)) {
        const v = this.vars[arg];
        if (v === undefined) return undefined;
        return createHash(fn).update(v).digest('hex');
      }
    }
    return this.vars[name];
  }

  expand(tpl: string): string {
    let out = '';
    for (let i = 0; i < tpl.length; i++) {
      const ch = tpl[i];
      if (ch !== '%') { out += ch; continue; }
      i++;
      if (i >= tpl.length) break;
      if (tpl[i] === '%') { out += '%'; continue; }
      // [-][0]digits[.[-][0]digits]
      let sign = 1;
      let zeroPad = false;
      let width = 0;
      let offset = 0;
      let hadWidth = false;
      if (tpl[i] === '-') { sign = -1; i++; }
      if (tpl[i] === '0') { zeroPad = true; i++; }
      while (/\d/.test(tpl[i] ?? '')) { width = width * 10 + Number(tpl[i]); i++; hadWidth = true; }
      if (tpl[i] === '.') {
        offset = sign * width;
        sign = 1;
        width = 0;
        i++;
        if (tpl[i] === '-') { sign = -1; i++; }
        if (tpl[i] === '0') { zeroPad = true; i++; }
        while (/\d/.test(tpl[i] ?? '')) { width = width * 10 + Number(tpl[i]); i++; hadWidth = true; }
      }
      width *= sign;
      const mods: string[] = [];
      // Modifiers are upper-case letters, variables lower-case: no ambiguity.
      while (i < tpl.length && MODIFIERS[tpl[i]]) mods.push(tpl[i++]);
      if (i >= tpl.length) break;
      let name: string;
      let value: string | undefined;
      if (tpl[i] === '{') {
        let depth = 1;
        let j = i + 1;
        for (; j < tpl.length && depth > 0; j++) {
          if (tpl[j] === '{') depth++;
          else if (tpl[j] === '}') depth--;
        }
        name = tpl.slice(i + 1, j - 1);
        i = j - 1;
        if (name.startsWith('if;')) {
          out += this.conditional(name);
          continue;
        }
        value = this.lookupLong(name);
      } else {
        name = SHORT[tpl[i]] ?? tpl[i];
        value = this.vars[name];
        if (!SHORT[tpl[i]]) value = undefined;
      }
      if (value === undefined) {
        this.errors.push(`Unknown variable '%${name.length === 1 ? name : `{${name}}`}'`);
        out += `UNSUPPORTED_VARIABLE_${name}`;
        continue;
      }
      for (const m of mods) value = MODIFIERS[m](value, m === 'H' || m === 'N' ? width : 0);
      if (!mods.includes('H') && !mods.includes('N') && hadWidth) value = this.substring(value, offset, width, zeroPad);
      out += this.opts.escape ? this.opts.escape(value) : value;
    }
    return out;
  }

  private substring(v: string, offset: number, width: number, zeroPad: boolean): string {
    const chars = [...v];
    let start = offset < 0 ? Math.max(0, chars.length + offset) : Math.min(offset, chars.length);
    if (zeroPad) return v.padStart(width, '0');
    let end = width === 0 ? chars.length : width < 0 ? chars.length + width : start + width;
    if (end < start) end = start;
    return chars.slice(start, end).join('');
  }

  private conditional(body: string): string {
    const args = splitArgs(body).slice(1);
    if (args.length !== 5) {
      this.errors.push('if: requires four or five parameters');
      return '';
    }
    const sub = new Expander(this.vars, { ...this.opts, escape: undefined });
    const [l, op, r, yes, no] = args.map((a) => sub.expand(a));
    this.errors.push(...sub.errors);
    const res = compare(l, op, r);
    if (res === null) {
      this.errors.push(`if: Unsupported comparator '${op}'`);
      return '';
    }
    const chosen = res ? yes : no;
    return this.opts.escape ? this.opts.escape(chosen) : chosen;
  }
}

/** Expand a template; unknown variables become UNSUPPORTED_VARIABLE_x and are listed in errors. */
export function expandVarsChecked(template: string, vars: VarTable, opts: ExpandOptions = {}): ExpandResult {
  const e = new Expander(withDerivedNames(vars), opts);
  const value = e.expand(template);
  return { value, errors: e.errors };
}

export function expandVars(template: string, vars: VarTable, opts: ExpandOptions = {}): string {
  return expandVarsChecked(template, vars, opts).value;
}
