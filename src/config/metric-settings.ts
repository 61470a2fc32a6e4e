/**
 * Dovecot 2.3's `metric NAME { filter = …; group_by = … }` sections
 * (stats/stats-settings.c) and the event filter language of their
 * `filter` (lib/event-filter-parser.y: `key=value`, `<`, `>`, `<=`, `>=`,
 * AND, OR, NOT, parentheses, quoted values, `*` and `?` wildcards), parsed
 * into what the stats master (server/stats-metrics.ts) matches events
 * against. Also which events Sealmail emits with which fields
 * (SEALMAIL_EVENTS), so that a metric Sealmail cannot fill is named at
 * start (support-report.ts) instead of staying silently at zero.
 */

/** The events Sealmail sends and their fields (`duration` is every event's, in microseconds). */
export const SEALMAIL_EVENTS: Record<string, string[]> = {
  imap_command_finished: ['cmd_name', 'tagged_reply_state', 'user', 'duration'],
  auth_request_finished: ['success', 'error', 'service', 'mechanism', 'user', 'duration'],
  mail_delivery_finished: ['user', 'error', 'duration'],
  smtp_server_transaction_finished: ['recipients', 'recipients_succeeded', 'recipients_failed', 'duration'],
};

export type FilterExpr =
  | { op: 'and' | 'or'; a: FilterExpr; b: FilterExpr }
  | { op: 'not'; a: FilterExpr }
  | { op: 'cmp'; key: string; cmp: '=' | '<' | '>' | '<=' | '>='; value: string };

export interface GroupBy {
  field: string;
  /** discrete: one sub-metric per value; quantized: one per bucket of `ranges` (min exclusive, max inclusive) */
  quantized: boolean;
  ranges: { min: number; max: number }[];
}

export interface MetricSpec {
  name: string;
  description: string;
  filter: FilterExpr | null;
  groupBy: GroupBy[];
  /** why Sealmail cannot fill this metric as Dovecot would (said at start), or none */
  gaps: string[];
}

/** Tokens: parentheses, comparison operators, words and "quoted strings". */
function tokenize(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t') { i++; continue; }
    if (c === '(' || c === ')') { out.push(c); i++; continue; }
    if (c === '<' || c === '>' || c === '=') {
      const two = text.slice(i, i + 2);
      if (two === '<=' || two === '>=') { out.push(two); i += 2; } else { out.push(c); i++; }
      continue;
    }
    if (c === '"') {
      let v = '';
      i++;
      while (i < text.length && text[i] !== '"') { if (text[i] === '\\' && i + 1 < text.length) i++; v += text[i++]; }
      if (i >= text.length) throw new Error('unterminated quoted string');
      i++;
      out.push(`"${v}`); // a leading quote marks a string token (never an operator or keyword)
      continue;
    }
    let v = '';
    while (i < text.length && !' \t()<>="'.includes(text[i])) v += text[i++];
    out.push(v);
  }
  return out;
}

/** Parse a `filter =` value; throws Error with what is wrong. */
export function parseEventFilter(text: string): FilterExpr {
  const toks = tokenize(text);
  let p = 0;
  const OPS = new Set(['(', ')', '=', '<', '>', '<=', '>=']);
  const word = (t: string | undefined): string | null => (t === undefined || OPS.has(t) ? null : t.startsWith('"') ? t.slice(1) : t);
  const isKw = (k: string) => toks[p] !== undefined && toks[p].toUpperCase() === k;
  const primary = (): FilterExpr => {
    if (isKw('NOT')) { p++; return { op: 'not', a: primary() }; }
    if (toks[p] === '(') {
      p++;
      const e = or();
      if (toks[p] !== ')') throw new Error('missing )');
      p++;
      return e;
    }
    const key = word(toks[p]);
    if (key === null) throw new Error(`unexpected ${toks[p] ?? 'end of filter'}`);
    p++;
    const cmp = toks[p];
    if (cmp !== '=' && cmp !== '<' && cmp !== '>' && cmp !== '<=' && cmp !== '>=') throw new Error(`expected an operator after ${key}`);
    p++;
    const value = word(toks[p]);
    if (value === null) throw new Error(`expected a value after ${key}${cmp}`);
    p++;
    return { op: 'cmp', key: key.toLowerCase(), cmp, value };
  };
  const and = (): FilterExpr => {
    let e = primary();
    while (isKw('AND')) { p++; e = { op: 'and', a: e, b: primary() }; }
    return e;
  };
  const or = (): FilterExpr => {
    let e = and();
    while (isKw('OR')) { p++; e = { op: 'or', a: e, b: and() }; }
    return e;
  };
  const e = or();
  if (p < toks.length) throw new Error(`unexpected ${toks[p]}`);
  return e;
}

/** Dovecot's group_by: `field`, `field:discrete`, `field:exponential:MIN:MAX:BASE`, `field:linear:MIN:MAX:STEP`. */
export function parseGroupBy(text: string): GroupBy[] {
  return text.split(/\s+/).filter(Boolean).map((item) => {
    const [field, fn, ...params] = item.split(':');
    if (!field) throw new Error(`group_by '${item}': no field name`);
    if (fn === undefined || fn === 'discrete') {
      if (params.length) throw new Error(`group_by '${item}': discrete takes no parameters`);
      return { field, quantized: false, ranges: [] };
    }
    const nums = params.map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));
    if (nums.length !== 3 || nums.some((n) => Number.isNaN(n))) throw new Error(`group_by '${item}': ${fn} needs three unsigned numbers`);
    const [min, max, k] = nums;
    if (min >= max) throw new Error(`group_by '${item}': min must be less than max`);
    const ranges: { min: number; max: number }[] = [];
    if (fn === 'exponential') {
      if (k !== 2 && k !== 10) throw new Error(`group_by 'exponential' aggregate function base must be one of: 2, 10 (base=${k})`);
      ranges.push({ min: -Infinity, max: k ** min });
      for (let e = min; e < max; e++) ranges.push({ min: k ** e, max: k ** (e + 1) });
      ranges.push({ min: k ** max, max: Infinity });
    } else if (fn === 'linear') {
      if (k === 0 || (max - min) % k !== 0) throw new Error(`group_by '${item}': linear step must divide max - min`);
      ranges.push({ min: -Infinity, max: min });
      for (let v = min; v < max; v += k) ranges.push({ min: v, max: v + k });
      ranges.push({ min: max, max: Infinity });
    } else throw new Error(`group_by '${item}': unknown aggregation function ${fn}`);
    return { field, quantized: true, ranges };
  });
}

/** Event names a filter can match (`event=` terms outside NOT), or null when it matches no name in particular. */
function filterEvents(e: FilterExpr): string[] | null {
  switch (e.op) {
    case 'cmp': return e.key === 'event' && e.cmp === '=' ? [e.value] : null;
    case 'not': return null;
    case 'and': { const a = filterEvents(e.a); const b = filterEvents(e.b); return a && b ? a.filter((x) => b.includes(x)) : a ?? b; }
    case 'or': { const a = filterEvents(e.a); const b = filterEvents(e.b); return a && b ? [...a, ...b] : null; }
  }
}

/** The keys a filter compares (event, category, fields). */
function filterKeys(e: FilterExpr, out = new Set<string>()): Set<string> {
  if (e.op === 'cmp') out.add(e.key);
  else { filterKeys(e.a, out); if (e.op !== 'not') filterKeys(e.b, out); }
  return out;
}

const nameMatches = (pattern: string, name: string): boolean => wildcardMatch(pattern, name, false);

/** The `metric {}` sections as specs, each with what Sealmail cannot fill. */
export function metricSpecs(sections: { name: string; settings: Record<string, string> }[]): MetricSpec[] {
  return sections.map(({ name, settings }) => {
    const spec: MetricSpec = { name, description: settings.description ?? '', filter: null, groupBy: [], gaps: [] };
    try { spec.filter = parseEventFilter(settings.filter ?? ''); } catch (e) { spec.gaps.push(`its filter (${settings.filter ?? ''}) is not understood by Sealmail: ${(e as Error).message}; it counts nothing`); }
    try { spec.groupBy = parseGroupBy(settings.group_by ?? ''); } catch (e) { spec.gaps.push(`${(e as Error).message}; it is not grouped`); }
    for (const k of Object.keys(settings)) {
      if (k !== 'filter' && k !== 'group_by' && k !== 'description') spec.gaps.push(`${k} = ${settings[k]} has no effect in Sealmail`);
    }
    if (!spec.filter) return spec;
    for (const k of filterKeys(spec.filter)) {
      // Sealmail's events carry no categories or source locations: such a term never matches
      if (k === 'category' || k === 'source_location') spec.gaps.push(`its filter compares ${k}, which Sealmail's events do not have: that term never matches`);
    }
    const wanted = filterEvents(spec.filter);
    const emitted = Object.keys(SEALMAIL_EVENTS);
    const events = wanted === null ? emitted : emitted.filter((n) => wanted.some((w) => nameMatches(w, n)));
    const missing = (wanted ?? []).filter((w) => !emitted.some((n) => nameMatches(w, n)));
    if (events.length === 0 || missing.length) spec.gaps.push(`Sealmail sends no ${(missing.length ? missing : wanted ?? []).join(', ')} events${events.length ? '' : ': its counts stay 0'}`);
    for (const g of spec.groupBy) {
      if (events.length && !events.some((ev) => SEALMAIL_EVENTS[ev].includes(g.field))) spec.gaps.push(`group_by ${g.field}: Sealmail's ${events.join(', ')} events have no ${g.field} field: not grouped by it`);
    }
    return spec;
  });
}

/**
 * Dovecot's wildcard_match (`*` any run, `?` one character): the classic
 * two-pointer walk that returns to the last `*` only, so it never
 * backtracks further (linear in text × pattern at worst, for any input).
 */
export function wildcardMatch(pattern: string, text: string, icase: boolean): boolean {
  const p = icase ? pattern.toLowerCase() : pattern;
  const t = icase ? text.toLowerCase() : text;
  let i = 0, j = 0, star = -1, mark = 0;
  while (j < t.length) {
    if (i < p.length && (p[i] === '?' || p[i] === t[j])) { i++; j++; }
    else if (i < p.length && p[i] === '*') { star = i++; mark = j; }
    else if (star >= 0) { i = star + 1; j = ++mark; }
    else return false;
  }
  while (i < p.length && p[i] === '*') i++;
  return i === p.length;
}
