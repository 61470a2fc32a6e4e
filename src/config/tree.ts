/**
 * The parsed configuration as Dovecot's config process holds it: one settings
 * tree per filter (the global one first), each tree a node with settings and
 * named sub-sections (`service imap-login` → `inet_listener imaps` …).
 * Filters with the same conditions are one filter, and sections with the same
 * type and name are one section (later settings win), as in Dovecot 2.3.
 */
import type { Origin } from './errors.js';

export interface Entry {
  value: string;
  origin: Origin;
  /** The value was given as `<path` (value = the resolved path until the file is read). */
  fromFile?: boolean;
  /** The path as written after `<` (doveconf -n prints it so). */
  written?: string;
}

export class Node {
  readonly settings = new Map<string, Entry>();
  /** key "type/id" → section, in first-seen order */
  readonly sections = new Map<string, Node>();
  constructor(
    readonly type = '',
    /** identity: the name, or a counter for unnamed list sections */
    readonly id = '',
    /** the name as written (may be '' for unnamed sections) */
    readonly name = '',
    readonly origin: Origin = { file: '', line: 0 },
  ) {}

  section(type: string, id: string, name: string, origin: Origin): Node {
    const k = `${type}/${id}`;
    let n = this.sections.get(k);
    if (!n) {
      n = new Node(type, id, name, origin);
      this.sections.set(k, n);
    }
    return n;
  }

  sectionsOf(type: string): Node[] {
    return [...this.sections.values()].filter((s) => s.type === type);
  }

  get(key: string): string | undefined {
    return this.settings.get(key)?.value;
  }
}

export interface FilterSpec {
  /** `protocol imap` → "imap"; `protocol !imap` → "!imap" */
  protocol?: string;
  local?: string;
  remote?: string;
  localName?: string;
}

export interface Filter {
  spec: FilterSpec;
  root: Node;
  origin: Origin;
}

export function filterKey(f: FilterSpec): string {
  return `${f.localName ?? ''}|${f.local ?? ''}|${f.remote ?? ''}|${f.protocol ?? ''}`;
}

/** Network prefix length of `IP[/bits]` (host names and bare IPs count as full). */
export function prefixBits(net: string | undefined): number {
  if (!net) return 0;
  const slash = net.indexOf('/');
  if (slash >= 0) return Number(net.slice(slash + 1));
  return net.includes(':') ? 128 : 32;
}

/**
 * Dovecot's filter order, least specific first (doveconf prints in this
 * order and lookups apply later = more specific): local_name, then local
 * bits, remote bits, then protocol.
 */
export function compareFilters(a: FilterSpec, b: FilterSpec): number {
  const n = (x: FilterSpec) => (x.localName ? 1 : 0);
  if (n(a) !== n(b)) return n(a) - n(b);
  if (prefixBits(a.local) !== prefixBits(b.local)) return prefixBits(a.local) - prefixBits(b.local);
  if (prefixBits(a.remote) !== prefixBits(b.remote)) return prefixBits(a.remote) - prefixBits(b.remote);
  const s = (x: FilterSpec) => (x.protocol ? 1 : 0);
  return s(a) - s(b);
}
