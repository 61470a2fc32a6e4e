/**
 * The typed view of a parsed configuration that the rest of Sealmail reads:
 * effective values for a connection context (protocol, local/remote IP, TLS
 * SNI name) applied as Dovecot's filters apply them, Dovecot's built-in
 * defaults for anything unset, and the list sections (passdb, userdb,
 * service, namespace, plugin) as plain records.
 */
import { isIP } from 'node:net';
import type { ParsedConfig } from './parser.js';
import type { Entry, Filter, FilterSpec, Node } from './tree.js';
import { DEFAULTS, PLUGIN_SERVICE_DEFAULTS, SECTION_DEFAULTS, SERVICE_DEFAULTS } from './known-settings.js';
import { parseBool, parseSize, parseTime } from './values.js';

export interface FilterContext {
  protocol?: string;
  localIp?: string;
  remoteIp?: string;
  localName?: string;
}

export interface InetListener { name: string; address?: string; port?: string; ssl?: string; haproxy?: string; reuse_port?: string }
export interface UnixListener { path: string; mode?: string; user?: string; group?: string }
export interface ServiceConfig {
  name: string;
  settings: Record<string, string>;
  inetListeners: InetListener[];
  unixListeners: UnixListener[];
}
export interface NamespaceConfig {
  name: string;
  settings: Record<string, string>;
  mailboxes: { name: string; settings: Record<string, string> }[];
}

function ipToBigInt(ip: string): { v: bigint; bits: number } | null {
  const kind = isIP(ip);
  if (kind === 4) return { v: ip.split('.').reduce((a, o) => (a << 8n) + BigInt(Number(o)), 0n), bits: 32 };
  if (kind === 6) {
    const [head, tail = ''] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
    const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return { v: groups.reduce((a, g) => (a << 16n) + BigInt(parseInt(g || '0', 16)), 0n), bits: 128 };
  }
  return null;
}

/** Does `ip` fall inside `net` (`IP[/bits]`)? */
export function ipInNetwork(ip: string, net: string): boolean {
  const [addr, bitsText] = net.split('/');
  const a = ipToBigInt(ip.replace(/^::ffff:(?=\d+\.)/, ''));
  const n = ipToBigInt(addr);
  if (!a || !n || a.bits !== n.bits) return false;
  const bits = bitsText === undefined ? n.bits : Number(bitsText);
  const shift = BigInt(n.bits - bits);
  return a.v >> shift === n.v >> shift;
}

/**
 * A `local_name` mask against an SNI name as Dovecot's dns_match_wildcard
 * (RFC 4592 style, case-insensitive): `*` stands for exactly one label and
 * must be followed by `.` (`*.b.test` matches `x.b.test`, not `y.x.b.test`),
 * `?` for one character.
 */
export function localNameMatches(mask: string, name: string): boolean {
  let i = 0;
  let j = 0;
  const lower = (c: string) => c.toLowerCase();
  while (i < name.length && j < mask.length) {
    if (mask[j] === '*') {
      const dot = name.indexOf('.', i);
      if (dot < 0 || mask[j + 1] !== '.') return false;
      i = dot;
      j++;
    } else if (mask[j] !== '?' && lower(name[i]) !== lower(mask[j])) return false;
    i++;
    j++;
  }
  if (mask[j] === '*') j++;
  return i >= name.length && j >= mask.length;
}

export function filterMatches(spec: FilterSpec, ctx: FilterContext): boolean {
  if (spec.protocol !== undefined) {
    const p = ctx.protocol ?? '';
    if (spec.protocol.startsWith('!') ? spec.protocol.slice(1) === p : spec.protocol !== p) return false;
  }
  if (spec.local !== undefined && !(ctx.localIp && ipInNetwork(ctx.localIp, spec.local))) return false;
  if (spec.remote !== undefined && !(ctx.remoteIp && ipInNetwork(ctx.remoteIp, spec.remote))) return false;
  if (spec.localName !== undefined && !(ctx.localName && spec.localName.split(' ').some((n) => localNameMatches(n, ctx.localName!)))) return false;
  return true;
}

function record(node: Node | undefined, defaults: Record<string, string> = {}): Record<string, string> {
  const r: Record<string, string> = { ...defaults };
  if (node) for (const [k, e] of node.settings) r[k] = e.value;
  return r;
}

export class DovecotConfig {
  readonly path: string;
  readonly warnings: string[];
  readonly filters: Filter[];

  constructor(parsed: ParsedConfig) {
    this.path = parsed.path;
    this.warnings = parsed.warnings;
    this.filters = parsed.filters;
  }

  private matching(ctx: FilterContext = {}): Filter[] {
    return this.filters.filter((f) => filterMatches(f.spec, ctx));
  }

  /** Effective value of a global setting ('' when neither set nor known). */
  get(key: string, ctx?: FilterContext): string {
    let v: string | undefined;
    for (const f of this.matching(ctx)) {
      const e = f.root.settings.get(key);
      if (e) v = e.value;
    }
    return v ?? DEFAULTS.get(key) ?? '';
  }

  /** Where the value get() returns came from (file:line, the `<path` it was read from); undefined for a default. */
  source(key: string, ctx?: FilterContext): Entry | undefined {
    let e: Entry | undefined;
    for (const f of this.matching(ctx)) e = f.root.settings.get(key) ?? e;
    return e;
  }

  /** Was the setting given anywhere that applies (not just defaulted)? */
  isSet(key: string, ctx?: FilterContext): boolean {
    return this.matching(ctx).some((f) => f.root.settings.has(key));
  }

  /** Global settings the configuration sets anywhere (any filter), sorted. */
  explicitGlobals(): string[] {
    const keys = new Set<string>();
    for (const f of this.filters) for (const k of f.root.settings.keys()) keys.add(k);
    return [...keys].sort();
  }

  getBool(key: string, ctx?: FilterContext): boolean { return parseBool(this.get(key, ctx)); }

  getSize(key: string, ctx?: FilterContext): number {
    const r = parseSize(this.get(key, ctx) || '0');
    return typeof r === 'number' ? r : 0;
  }

  getTime(key: string, ctx?: FilterContext): number {
    const r = parseTime(this.get(key, ctx) || '0', true);
    return typeof r === 'number' ? r : 0;
  }

  /** Merged sections of one type across the matching filters, in first-seen order. */
  private sections(type: string, ctx?: FilterContext): Node[][] {
    const byId = new Map<string, Node[]>();
    for (const f of this.matching(ctx)) {
      for (const s of f.root.sectionsOf(type)) {
        const list = byId.get(s.id) ?? [];
        list.push(s);
        byId.set(s.id, list);
      }
    }
    return [...byId.values()];
  }

  private merged(nodes: Node[], defaults: Record<string, string> = {}): Record<string, string> {
    return Object.assign({ ...defaults }, ...nodes.map((n) => record(n)));
  }

  /** The `plugin {}` settings (one flat map). */
  plugin(ctx?: FilterContext): Record<string, string> {
    return Object.assign({}, ...this.sections('plugin', ctx).flat().map((n) => record(n)));
  }

  passdbs(ctx?: FilterContext): Record<string, string>[] {
    return this.sections('passdb', ctx).map((ns) => ({ ...this.merged(ns, SECTION_DEFAULTS.passdb), name: ns[0].name }));
  }

  userdbs(ctx?: FilterContext): Record<string, string>[] {
    return this.sections('userdb', ctx).map((ns) => ({ ...this.merged(ns, SECTION_DEFAULTS.userdb), name: ns[0].name }));
  }

  /** Services: Dovecot's built-in ones with their listeners, overlaid by the configuration. */
  services(): ServiceConfig[] {
    const byName = new Map<string, Node[]>();
    for (const s of DEFAULTS.sectionsOf('service')) byName.set(s.name, [s]);
    for (const [, nodes] of this.sections('service').entries()) {
      const name = nodes[0].name;
      byName.set(name, [...(byName.get(name) ?? []), ...nodes]);
    }
    return [...byName.entries()].map(([name, nodes]) => {
      const inet = new Map<string, Record<string, string>>();
      const unix = new Map<string, Record<string, string>>();
      for (const n of nodes) {
        for (const l of n.sectionsOf('inet_listener')) inet.set(l.name, { ...(inet.get(l.name) ?? SECTION_DEFAULTS.inet_listener), ...record(l) });
        for (const l of n.sectionsOf('unix_listener')) unix.set(l.name, { ...(unix.get(l.name) ?? SECTION_DEFAULTS.unix_listener), ...record(l) });
      }
      return {
        name,
        settings: this.merged(nodes, { ...SERVICE_DEFAULTS, ...PLUGIN_SERVICE_DEFAULTS[name] }),
        inetListeners: [...inet.entries()].map(([n, s]) => ({ name: n, ...s })),
        unixListeners: [...unix.entries()].map(([p, s]) => ({ path: p, ...s })),
      };
    });
  }

  /** The `metric NAME {}` sections (stats service), in configuration order. */
  metrics(): { name: string; settings: Record<string, string> }[] {
    return this.sections('metric').map((nodes) => ({ name: nodes[0].name, settings: this.merged(nodes) }));
  }

  namespaces(ctx?: FilterContext): NamespaceConfig[] {
    return this.sections('namespace', ctx).map((nodes) => {
      const mailboxes = new Map<string, Record<string, string>>();
      for (const n of nodes) {
        for (const m of n.sectionsOf('mailbox')) mailboxes.set(m.name, { ...(mailboxes.get(m.name) ?? SECTION_DEFAULTS.mailbox), ...record(m) });
      }
      return {
        name: nodes[0].name,
        settings: this.merged(nodes, SECTION_DEFAULTS.namespace),
        mailboxes: [...mailboxes.entries()].map(([name, settings]) => ({ name, settings })),
      };
    });
  }
}
