/**
 * Sequence sets (RFC 3501 §9 `sequence-set`, RFC 5182 `$` SEARCHRES marker)
 * with Dovecot 2.3's syntax as observed on the real server: numbers are
 * 1..4294967295 (leading zeros allowed), `a:b` is unordered, a trailing
 * comma is tolerated ("1," parses) but an empty element elsewhere is not,
 * `$` must stand alone. Whether a number is inside the mailbox is the
 * command layer's check (Dovecot answers the same BAD text for both).
 */

/** `*` is kept symbolic until the caller knows the mailbox's highest number. */
export const STAR = -1;

export interface SeqRange { from: number; to: number }

export type SequenceSet = { type: 'set'; ranges: SeqRange[] } | { type: 'saved' };

export class SequenceSetError extends Error {
  constructor(readonly offset: number) { super(`invalid sequence set at byte ${offset}`); }
}

/** Dovecot's BAD reason for an unparsable or out-of-range set. */
export function sequenceSetReason(uidCommandArg: boolean): string {
  return uidCommandArg ? 'Invalid uidset' : 'Invalid messageset';
}

const MAX = 4294967295;

function num(s: string, at: number, base: number): number {
  if (s === '*') return STAR;
  if (s.length === 0 || s.length > 10 || !/^[0-9]+$/.test(s)) throw new SequenceSetError(base + at);
  const n = Number(s);
  if (n === 0 || n > MAX) throw new SequenceSetError(base + at);
  return n;
}

/** Parse an atom's text; `base` offsets error positions (e.g. the atom's command offset). */
export function parseSequenceSet(text: string, base = 0): SequenceSet {
  if (text === '$') return { type: 'saved' };
  if (text.length === 0) throw new SequenceSetError(base);
  const ranges: SeqRange[] = [];
  let pos = 0;
  const parts = text.split(',');
  parts.forEach((part, idx) => {
    if (part.length === 0 && idx === parts.length - 1 && idx > 0) return; // "1," like Dovecot
    const colon = part.indexOf(':');
    if (colon < 0) {
      const n = num(part, pos, base);
      ranges.push({ from: n, to: n });
    } else {
      const a = num(part.slice(0, colon), pos, base);
      const b = num(part.slice(colon + 1), pos + colon + 1, base);
      ranges.push({ from: a, to: b });
    }
    pos += part.length + 1;
  });
  return { type: 'set', ranges };
}

/**
 * Resolve `*` to `max` and return sorted, merged, ordered ranges. Per RFC
 * 3501 `*:4` with max 2 is 2:4; callers drop or reject what lies above max.
 */
export function normalizeSequenceSet(set: SeqRange[], max: number): SeqRange[] {
  const rs = set.map(({ from, to }) => {
    const a = from === STAR ? max : from;
    const b = to === STAR ? max : to;
    return a <= b ? { from: a, to: b } : { from: b, to: a };
  }).sort((x, y) => x.from - y.from);
  const out: SeqRange[] = [];
  for (const r of rs) {
    const last = out[out.length - 1];
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/** Wire form of normalised ranges ("1:3,7"), as Dovecot writes UID sets. */
export function formatSequenceSet(ranges: readonly SeqRange[]): string {
  return ranges.map((r) => (r.from === r.to ? `${r.from}` : `${r.from}:${r.to}`)).join(',');
}
