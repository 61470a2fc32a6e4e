/**
 * File-name handling of the main parser: `!include` patterns as glob(3) with
 * GLOB_BRACE (each brace alternative globbed and sorted on its own, results
 * concatenated, as glibc does), and paths relative to the including file.
 */
import { readdirSync, statSync } from 'node:fs';

/** Dovecot joins a relative path to the including file's directory without normalising. */
export function relativeTo(includingFile: string, path: string): string {
  if (path.startsWith('/')) return path;
  const slash = includingFile.lastIndexOf('/');
  return slash < 0 ? path : includingFile.slice(0, slash) + '/' + path;
}

/** `a{b,c{d,e}}f` → [abf, acdf, acef]; unbalanced braces stay literal. */
export function expandBraces(pattern: string): string[] {
  let depth = 0;
  let start = -1;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') { i++; continue; }
    if (c === '{') { if (depth++ === 0) start = i; }
    else if (c === '}' && depth > 0 && --depth === 0) {
      const inner = pattern.slice(start + 1, i);
      const alts: string[] = [];
      let d = 0;
      let from = 0;
      for (let j = 0; j < inner.length; j++) {
        if (inner[j] === '\\') { j++; continue; }
        if (inner[j] === '{') d++;
        else if (inner[j] === '}') d--;
        else if (inner[j] === ',' && d === 0) { alts.push(inner.slice(from, j)); from = j + 1; }
      }
      alts.push(inner.slice(from));
      const pre = pattern.slice(0, start);
      const post = pattern.slice(i + 1);
      return alts.flatMap((a) => expandBraces(pre + a + post));
    }
  }
  return [pattern];
}

function segmentRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 2);
      if (end < 0) { re += '\\['; continue; }
      let body = seg.slice(i + 1, end);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/\\/g, '\\\\') + ']';
      i = end;
    } else if (c === '\\' && i + 1 < seg.length) re += '\\' + seg[++i];
    else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

const hasMagic = (s: string) => /[*?[]/.test(s);

function globOne(pattern: string): string[] {
  if (!hasMagic(pattern)) {
    try { statSync(pattern); return [pattern]; } catch { return []; }
  }
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '' : parts[0]];
  let first = 1;
  if (hasMagic(parts[0])) { bases = ['']; first = 0; }
  for (let k = first; k < parts.length; k++) {
    const seg = parts[k];
    const next: string[] = [];
    for (const base of bases) {
      const dir = base === '' ? (k === 0 ? '.' : '/') : base;
      const join = (n: string) => (base === '' ? (k === 0 ? n : '/' + n) : base + '/' + n);
      if (!hasMagic(seg)) { next.push(join(seg)); continue; }
      let names: string[];
      try { names = readdirSync(dir); } catch { continue; }
      const re = segmentRegExp(seg);
      // glob(3) skips dot files unless the pattern segment starts with '.'
      for (const n of names.sort()) if (re.test(n) && (seg.startsWith('.') || !n.startsWith('.'))) next.push(join(n));
    }
    bases = next;
  }
  return bases.filter((p) => { try { statSync(p); return true; } catch { return false; } });
}

/** Files matching an include pattern, in the order Dovecot reads them. */
export function globInclude(pattern: string): string[] {
  return expandBraces(pattern).flatMap(globOne);
}
