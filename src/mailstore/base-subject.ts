/**
 * RFC 5256 §2.1 base subject and the i;unicode-casemap form (RFC 5051) that
 * Dovecot's SORT and THREAD compare strings in. Follows Dovecot's reading of
 * the grammar: encoded words decoded and titlecased before anything else
 * (so "Re:", "RE:" and "re:" are one leader), whitespace runs packed into
 * one space, trailers "(fwd)" and spaces dropped, leaders
 * `*[blob] (RE|FW|FWD) [ ][blob] :` stripped, a leading [blob] dropped when
 * something follows it, and "[fwd: … ]" unwrapped, repeated until stable.
 */
import { decodeWords } from './message-headers.js';
import { casemap } from './unicode-casemap.js';

/**
 * i;unicode-casemap (RFC 5051) as Dovecot computes it (uni_utf8_to_decomposed_titlecase):
 * each character's simple titlecase mapping, then one level of its decomposition, Hangul
 * syllables decomposed into their jamo — from Dovecot's own tables (unicode-casemap.ts).
 */
export { casemap };

/** Compare by Unicode code point, as strcmp() over UTF-8 does. */
export function compareCodepoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** A [blob] at `i` (no nested brackets) and one space after it: the index past it, or -1. */
function blobEnd(s: string, i: number): number {
  if (s[i] !== '[') return -1;
  let j = i + 1;
  while (j < s.length && s[j] !== '[' && s[j] !== ']') j++;
  if (s[j] !== ']') return -1;
  j++;
  if (s[j] === ' ') j++;
  return j;
}

/** One subj-leader at `start` (a leading space counts on its own): the new start, or -1. */
function leaderEnd(s: string, start: number, mark: () => void): number {
  let i = start;
  let found = -1;
  if (s[i] === ' ') { i++; found = i; }
  const base = i;
  let j = i;
  while (s[j] === '[') { const e = blobEnd(s, j); if (e < 0) return found; j = e; }
  if (s.startsWith('RE', j)) j += 2;
  else if (s.startsWith('FWD', j)) j += 3;
  else if (s.startsWith('FW', j)) j += 2;
  else return found;
  if (s[j] === ' ') j++;
  if (s[j] === '[') { const e = blobEnd(s, j); if (e < 0) return found; j = e; }
  if (s[j] !== ':') return found;
  void base;
  mark();
  return j + 1;
}

export interface BaseSubject {
  subject: string;
  /** A Re:/Fwd: leader, a (fwd) trailer or a [fwd: …] wrapper was removed (THREAD=REFERENCES step 5). */
  replyOrForward: boolean;
}

export function baseSubject(raw: string): BaseSubject {
  let rf = false;
  const mark = () => { rf = true; };
  let s = casemap(decodeWords(raw)).replace(/[ \t\r\n]+/g, ' ');
  let start = 0;
  for (;;) {
    // (2) trailers
    let end = s.length;
    for (;;) {
      if (end > start && s[end - 1] === ' ') end--;
      else if (end - 5 >= start && s.slice(end - 5, end) === '(FWD)') { rf = true; end -= 5; } else break;
    }
    s = s.slice(0, end);
    // (3)-(5) leaders and blobs
    for (;;) {
      let found = false;
      const l = leaderEnd(s, start, mark);
      if (l >= 0) { start = l; found = true; }
      const b = blobEnd(s, start);
      if (b >= 0 && b < s.length) { start = b; found = true; }
      if (!found) break;
    }
    // (6) [fwd: …]
    if (s.startsWith('[FWD:', start) && s.length - start >= 5 && s[s.length - 1] === ']') {
      rf = true;
      s = s.slice(0, -1);
      start += 5;
      continue;
    }
    break;
  }
  return { subject: s.slice(start), replyOrForward: rf };
}
