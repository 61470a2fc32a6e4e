/**
 * Dovecot 2.3's value syntax for sizes, time intervals and booleans
 * (settings-parser.c / str-parse.c), returning an error string in Dovecot's
 * wording instead of throwing, so the parser can attach file:line.
 */

const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `64k`, `64 kB`, `2G`, `10 KiB`, `1024` → bytes. */
export function parseSize(v: string): number | string {
  const m = /^(\d+)\s*(?:([bkmgtBKMGT])(?:i?[bB])?)?$/.exec(v.trim());
  if (!m) return `Invalid size: ${v}`;
  return Number(m[1]) * (m[2] ? SIZE_UNITS[m[2].toLowerCase()] : 1);
}

const TIME_UNITS: [RegExp, number][] = [
  [/^(ms|msecs?|milliseconds?)$/i, 1],
  [/^(s|secs?|seconds?)$/i, 1000],
  [/^(m|mins?|minutes?)$/i, 60_000],
  [/^(h|hours?)$/i, 3_600_000],
  [/^(d|days?)$/i, 86_400_000],
  [/^(w|weeks?)$/i, 7 * 86_400_000],
];

/** `30d`, `4w`, `30 days`, `1min`, `2 secs` → milliseconds. */
export function parseTime(v: string, allowMs: boolean): number | string {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(v.trim());
  if (!m) return `Invalid time interval: ${v}`;
  const n = Number(m[1]);
  if (!m[2]) return n === 0 ? 0 : `Time interval '${v}' is missing units (add e.g. 's' for seconds)`;
  for (const [re, mul] of TIME_UNITS) {
    if (re.test(m[2])) {
      if (mul === 1 && !allowMs) return `Milliseconds not supported for this setting: ${v}`;
      return n * mul;
    }
  }
  return `Invalid time interval: ${v}`;
}

export function parseBool(v: string): boolean {
  return /^(yes|y|1)$/i.test(v.trim());
}

const SIZE_NAMES: [number, string][] = [[1024 ** 4, 'T'], [1024 ** 3, 'G'], [1024 ** 2, 'M'], [1024, 'k'], [1, 'B']];
const TIME_NAMES: [number, string][] = [[7 * 86_400_000, 'weeks'], [86_400_000, 'days'], [3_600_000, 'hours'], [60_000, 'mins'], [1000, 'secs'], [1, 'ms']];

function largestUnit(n: number, units: [number, string][]): string {
  if (n === 0) return `0 ${units[units.length - 1][1]}`;
  for (const [mul, name] of units) if (n % mul === 0) return `${n / mul} ${name}`;
  return String(n);
}

/**
 * The canonical text Dovecot keeps for a typed value (doveconf -n prints
 * `2048M` as `2 G`, `1h` as `1 hours`, `YES` as `yes`, mode `0` as `00`);
 * values are compared with defaults in this form.
 */
export function normalizeValue(type: string, v: string): string {
  switch (type) {
    case 'bool': return v.toLowerCase() === 'yes' ? 'yes' : 'no';
    case 'uint': return String(Number(v));
    case 'octal': return '0' + parseInt(v, 8).toString(8);
    case 'size': { const n = parseSize(v); return typeof n === 'number' ? largestUnit(n, SIZE_NAMES) : v; }
    case 'time': { const n = parseTime(v, true); return typeof n === 'number' ? (n === 0 ? '0' : largestUnit(n, TIME_NAMES)) : v; }
    default: return v;
  }
}
