/**
 * RFC 5260 date parts for the `date` and `currentdate` tests, computed as
 * Pigeonhole's ext-date-common.c does: header dates parsed as RFC 2822
 * (with the obsolete zone names), shifted to `:zone`, the header's own zone
 * (`:originalzone`) or the server's local zone, then one part extracted.
 * Pure functions so the interpreter stays free of I/O.
 */
import { parseMessageDate } from '../mailstore/message-headers.js';

/** A point in time plus the UTC offset (minutes) it is to be shown in. */
export interface ZonedDate { ms: number; offset: number }

export const DATE_PARTS = ['year', 'month', 'day', 'date', 'julian', 'hour', 'minute', 'second', 'time', 'iso8601', 'std11', 'zone', 'weekday'];

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** `+hhmm`/`-hhmm` → minutes east of UTC, or null when not a valid zone (Pigeonhole then warns and uses the local zone). */
export function parseZone(z: string): number | null {
  const m = /^([+-])([0-9]{2})([0-9]{2})$/.exec(z);
  if (!m || Number(m[3]) > 59) return null;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3]));
}

/** The server's local offset at that moment, as the default zone. */
export function localOffset(ms: number): number { return -new Date(ms).getTimezoneOffset(); }

/**
 * A header's date as Dovecot's message_date_parse reads it (Pigeonhole uses
 * that too), through the parser the IMAP side shares; null when it is not a
 * date (the test then does not match that field).
 */
export function parseRfc2822Date(v: string): ZonedDate | null {
  const d = parseMessageDate(v);
  return d ? { ms: d.time, offset: d.tz } : null;
}

const p2 = (n: number) => String(n).padStart(2, '0');
const p4 = (n: number) => String(n).padStart(4, '0');
const zoneText = (off: number) => `${off < 0 ? '-' : '+'}${p2(Math.floor(Math.abs(off) / 60))}${p2(Math.abs(off) % 60)}`;

/** One RFC 5260 section 4.2 date part of `d` in its offset; null for an unknown part. */
export function datePart(d: ZonedDate, part: string): string | null {
  const t = new Date(d.ms + d.offset * 60000); // wall clock of that zone, read with the UTC getters
  const Y = t.getUTCFullYear(), M = t.getUTCMonth() + 1, D = t.getUTCDate();
  const h = t.getUTCHours(), mi = t.getUTCMinutes(), s = t.getUTCSeconds();
  const zone = zoneText(d.offset);
  switch (part.toLowerCase()) {
    case 'year': return p4(Y);
    case 'month': return p2(M);
    case 'day': return p2(D);
    case 'date': return `${p4(Y)}-${p2(M)}-${p2(D)}`;
    // Modified Julian Day: days since 1858-11-17
    case 'julian': return String(Math.floor((Date.UTC(Y, M - 1, D) - Date.UTC(1858, 10, 17)) / 86400000));
    case 'hour': return p2(h);
    case 'minute': return p2(mi);
    case 'second': return p2(s);
    case 'time': return `${p2(h)}:${p2(mi)}:${p2(s)}`;
    case 'iso8601': return `${p4(Y)}-${p2(M)}-${p2(D)}T${p2(h)}:${p2(mi)}:${p2(s)}${d.offset === 0 ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(3)}`}`;
    case 'std11': return `${DAYS[t.getUTCDay()]}, ${p2(D)} ${MONTHS[M - 1][0].toUpperCase()}${MONTHS[M - 1].slice(1)} ${p4(Y)} ${p2(h)}:${p2(mi)}:${p2(s)} ${zone}`;
    case 'zone': return zone;
    case 'weekday': return String(t.getUTCDay());
  }
  return null;
}
