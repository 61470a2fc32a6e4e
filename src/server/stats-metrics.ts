/**
 * The stats service of Dovecot 2.3 (src/stats/), kept in the master: the
 * processes send their finished events in batches (util/stats-events.ts,
 * over the IPC both process models already have), each `metric {}` counts
 * the events its filter matches, grouped into sub-metrics by its group_by
 * (stats-metrics.c: discrete values in first-seen order, quantized ones
 * into buckets), and GET /metrics renders them as Dovecot's OpenMetrics
 * export does (stats-service-openmetrics.c): process_start_time_seconds,
 * dovecot_build_info, then per metric `_total` / `_count` and
 * `_duration_seconds_total` / `_sum` counters, or one histogram when the
 * last group_by is quantized, and `# EOF`.
 */
import type { DovecotConfig } from '../config/settings.js';
import { metricSpecs, wildcardMatch, type FilterExpr, type GroupBy, type MetricSpec } from '../config/metric-settings.js';
import type { StatsBatch } from '../util/stats-events.js';

/** The version Sealmail stands in for, and its own as the revision (dovecot_build_info's labels). */
const BUILD_INFO = 'version="2.3.19",revision="sealmail-0.1.0"';

interface MetricNode {
  /** the group value of this sub-metric (null at the top) */
  label: string | null;
  /** which bucket of its parent's quantized group_by, if it is one */
  bucket: number | null;
  /** the group_by levels still below this node */
  groupBy: GroupBy[];
  count: number;
  sumUs: number;
  children: Map<string, MetricNode>;
}

const node = (label: string | null, bucket: number | null, groupBy: GroupBy[]): MetricNode => ({ label, bucket, groupBy, count: 0, sumUs: 0, children: new Map() });

/** Prometheus' metric and label name rule ([a-zA-Z_:][a-zA-Z0-9_:]*), as openmetrics_check_name. */
const validName = (s: string): boolean => /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(s);

function matches(e: FilterExpr, name: string, fields: Record<string, string | number>): boolean {
  switch (e.op) {
    case 'and': return matches(e.a, name, fields) && matches(e.b, name, fields);
    case 'or': return matches(e.a, name, fields) || matches(e.b, name, fields);
    case 'not': return !matches(e.a, name, fields);
    case 'cmp': {
      if (e.key === 'event') return e.cmp === '=' && wildcardMatch(e.value, name, false);
      const v = fields[e.key];
      if (v === undefined) return false;
      if (e.cmp === '=') return wildcardMatch(e.value, String(v), true);
      if (typeof v !== 'number' || !/^-?\d+$/.test(e.value)) return false;
      const n = Number(e.value);
      return e.cmp === '<' ? v < n : e.cmp === '>' ? v > n : e.cmp === '<=' ? v <= n : v >= n;
    }
  }
}

/** stats_metric_event: count at this level, then in the sub-metric of the event's value of the next group_by field. */
function account(n: MetricNode, fields: Record<string, string | number>, us: number): void {
  n.count++;
  n.sumUs += us;
  const g = n.groupBy[0];
  if (!g) return;
  const v = g.field === 'duration' ? us : fields[g.field];
  if (v === undefined) return;
  let key: string, bucket: number | null = null;
  if (g.quantized) {
    if (typeof v !== 'number') return;
    const i = g.ranges.findIndex((r) => v > r.min && v <= r.max);
    if (i < 0) return;
    const r = g.ranges[i];
    bucket = i;
    key = r.min === -Infinity ? `${g.field}_ninf_${r.max}` : r.max === Infinity ? `${g.field}_${r.min + 1}_inf` : `${g.field}_${r.min + 1}_${r.max}`;
  } else key = String(v);
  let child = n.children.get(key);
  if (!child) { child = node(key, bucket, n.groupBy.slice(1)); n.children.set(key, child); }
  account(child, fields, us);
}

/** C's "%.6f" of a float (Dovecot divides by 1e6F, single precision: only the last digit may differ). */
const seconds = (us: number): string => (Math.fround(us) / 1e6).toFixed(6);
const escapeLabel = (v: string): string => JSON.stringify(v).slice(1, -1);

export class MetricsRegistry {
  readonly specs: MetricSpec[];
  private readonly tops: MetricNode[];
  private readonly started = Math.floor(Date.now() / 1000);

  constructor(specs: MetricSpec[]) {
    this.specs = specs;
    this.tops = specs.map((s) => node(null, null, s.groupBy));
  }

  ingest(batch: StatsBatch): void {
    if (!Array.isArray(batch)) return;
    for (const e of batch) {
      if (!e || typeof e.name !== 'string' || !Array.isArray(e.durations) || typeof e.fields !== 'object' || e.fields === null) continue;
      this.specs.forEach((s, i) => {
        if (!s.filter || !matches(s.filter, e.name, e.fields)) return;
        for (const us of e.durations) account(this.tops[i], e.fields, typeof us === 'number' && us >= 0 ? us : 0);
      });
    }
  }

  /** The OpenMetrics text of GET /metrics. */
  render(): string {
    const out: string[] = [
      '# HELP process_start_time_seconds Timestamp of service start',
      '# TYPE process_start_time_seconds gauge',
      `process_start_time_seconds ${this.started}`,
      '# HELP dovecot_build Dovecot build information',
      '# TYPE dovecot_build info',
      `dovecot_build_info{${BUILD_INFO}} 1`,
    ];
    this.specs.forEach((s, i) => {
      if (!validName(s.name)) return;
      const top = this.tops[i];
      const of = s.description ? ` of ${s.description}` : '';
      const name = `dovecot_${s.name}`;
      const last = s.groupBy[s.groupBy.length - 1];
      const histogram = last?.quantized === true && s.groupBy.slice(0, -1).every((g) => !g.quantized);
      if (histogram) {
        out.push(`# HELP ${name} Histogram${of}`, `# TYPE ${name} histogram`);
        walk(top, '', (n, labels) => { if (n.groupBy[0]?.quantized) histogramLines(out, name, n, labels); });
        histogramLines(out, name, top, '');
        return;
      }
      const grouped = s.groupBy.length > 0;
      out.push(`# HELP ${name} Total number of all events of this kind${of}`, `# TYPE ${name} counter`);
      walk(top, '', (n, labels) => out.push(`${name}_total{${labels}} ${n.count}`));
      out.push(`${name}${grouped ? '_count' : '_total'} ${top.count}`);
      out.push(`# HELP ${name}_duration_seconds Total duration of all events of this kind${of}`, `# TYPE ${name}_duration_seconds counter`);
      walk(top, '', (n, labels) => out.push(`${name}_duration_seconds_total{${labels}} ${seconds(n.sumUs)}`));
      out.push(`${name}${grouped ? '_duration_seconds_sum' : '_duration_seconds_total'} ${seconds(top.sumUs)}`);
    });
    out.push('# EOF');
    return out.join('\n') + '\n';
  }
}

/** The sub-metrics below `n` in Dovecot's order (depth first, first-seen), each with its labels; quantized levels are not entered. */
function walk(n: MetricNode, labels: string, visit: (n: MetricNode, labels: string) => void): void {
  const g = n.groupBy[0];
  if (!g || g.quantized || !validName(g.field)) return;
  for (const c of n.children.values()) {
    const l = `${labels ? `${labels},` : ''}${g.field}="${escapeLabel(c.label ?? '')}"`;
    visit(c, l);
    walk(c, l, visit);
  }
}

/** openmetrics_export_histogram: cumulative buckets, then _sum and _count when anything was counted. */
function histogramLines(out: string[], name: string, n: MetricNode, labels: string): void {
  const g = n.groupBy[0];
  if (!g?.quantized) return;
  let count = 0, sum = 0;
  const byBucket = new Map<number, MetricNode>();
  for (const c of n.children.values()) if (c.bucket !== null) byBucket.set(c.bucket, c);
  g.ranges.forEach((r, i) => {
    const c = byBucket.get(i);
    if (c) { sum = Math.fround(sum + c.sumUs); count += c.count; }
    const le = r.max === Infinity ? '+Inf' : g.field === 'duration' ? (Math.fround(r.max) / 1e6).toFixed(6) : String(r.max);
    out.push(`${name}_bucket{${labels ? `${labels},` : ''}le="${le}"} ${count}`);
  });
  if (count === 0) return;
  const l = labels ? `{${labels}}` : '';
  out.push(`${name}_sum${l} ${g.field === 'duration' ? (sum / 1e6).toFixed(6) : sum.toFixed(6)}`, `${name}_count${l} ${count}`);
}

/** The master's registry, when the configuration has `metric {}` sections (the children's batches land here). */
let active: MetricsRegistry | null = null;

export function startMetrics(config: DovecotConfig): MetricsRegistry {
  active = new MetricsRegistry(metricSpecs(config.metrics()));
  return active;
}

/** A child's batch (process-model.ts / service-pool.ts messages `{ t: 'stats' }`). */
export function ingestStats(batch: StatsBatch): void {
  active?.ingest(batch);
}
