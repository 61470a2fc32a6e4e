/**
 * `doveconf -n` output: the settings that differ from Dovecot's defaults, in
 * doveconf's layout (keys sorted as flattened paths, so `service auth-worker`
 * comes before `service auth`; list sections inline at their key; filters last,
 * least specific first, nested local_name → local → remote → protocol), values
 * quoted where doveconf quotes them and secrets hidden unless -P.
 */
import { hostname, release, arch } from 'node:os';
import { readFileSync } from 'node:fs';
import type { DovecotConfig } from './settings.js';
import type { Node, FilterSpec } from './tree.js';
import { DEFAULTS, defaultFor, isSecretKey } from './known-settings.js';

export interface DumpOptions {
  /** -P: show secrets */
  showSecrets?: boolean;
  version?: string;
  /**
   * Global lines a settings plugin computes (Pigeonhole's
   * managesieve_sieve_capability / _notify_capability), printed in their
   * sorted place unless the configuration sets them itself.
   */
  computed?: Record<string, string>;
}

function quoteValue(v: string): string {
  if (v !== '' && (/^[ \t]|[ \t]$/.test(v) || v.includes('#'))) return '"' + v.replace(/[\\"]/g, '\\$&') + '"';
  return v;
}

/** Dovecot escapes section names inside setting keys (settings_section_escape); doveconf sorts on those keys. */
function escapeSectionName(n: string): string {
  return n.replace(/[\\ =/,]/g, (c) => ({ '\\': '\\\\', ' ': '\\s', '=': '\\e', '/': '\\|', ',': '\\c' })[c]!);
}

function quoteName(n: string): string {
  return /[\s"{}]/.test(n) ? '"' + n.replace(/[\\"]/g, '\\$&') + '"' : n;
}

/** Keys doveconf prints in these sections even at their default. */
const ALWAYS_PRINTED: Record<string, string[]> = { namespace: ['location', 'prefix'] };

function osLine(): string {
  let distro = '';
  try {
    const osr = readFileSync('/etc/os-release', 'utf8');
    const name = /^NAME="?([^"\n]*)/m.exec(osr)?.[1]?.split(' ')[0] ?? '';
    let ver = '';
    try { ver = readFileSync('/etc/debian_version', 'utf8').trim(); } catch { ver = /^VERSION_ID="?([^"\n]*)/m.exec(osr)?.[1] ?? ''; }
    distro = `${name} ${ver} `;
  } catch { /* no os-release */ }
  return `# OS: Linux ${release()} ${arch() === 'x64' ? 'x86_64' : arch()} ${distro}`;
}

interface Item { sort: string; lines: (indent: string) => string[] }

function nodeItems(node: Node, types: string[], inFilter: boolean, opts: DumpOptions, defNode?: Node): Item[] {
  const items: Item[] = [];
  const t = types[types.length - 1];
  const always = t ? ALWAYS_PRINTED[t] ?? [] : [];
  for (const [key, e] of node.settings) {
    // Built-in services (imap-login's imap listener on 143 …) have their own defaults.
    const def = defNode?.get(key) ?? defaultFor(types, key);
    // Inside services, namespaces and their mailboxes doveconf prints every explicitly set
    // value, default or not (`auto = no`, `type = private`); passdb/userdb only non-defaults.
    const explicitShown = types.includes('service') || t === 'namespace' || t === 'mailbox';
    if (!inFilter && !explicitShown && def !== undefined && def === e.value && !e.fromFile && !always.includes(key)) continue;
    let shown: string;
    if (isSecretKey(key) && !opts.showSecrets) shown = '# hidden, use -P to show it';
    else if (e.fromFile) shown = '<' + (e.written ?? e.value);
    else shown = quoteValue(e.value);
    items.push({ sort: key, lines: (ind) => [`${ind}${key} = ${shown}`] });
  }
  for (const k of always) {
    if (!node.settings.has(k)) items.push({ sort: k, lines: (ind) => [`${ind}${k} = `] });
  }
  for (const s of node.sections.values()) {
    const childTypes = [...types, s.type];
    const inner = nodeItems(s, childTypes, inFilter, opts, defNode?.sections.get(`${s.type}/${s.id}`));
    const named = s.type === 'passdb' || s.type === 'userdb';
    if (named && s.name) inner.push({ sort: 'name', lines: (ind) => [`${ind}name = ${s.name}`] });
    if (inner.length === 0) continue;
    inner.sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0));
    const header = named || !s.name ? s.type : `${s.type} ${quoteName(s.name)}`;
    items.push({
      sort: `${s.type}/${escapeSectionName(s.id)}/`,
      lines: (ind) => [`${ind}${header} {`, ...inner.flatMap((i) => i.lines(ind + '  ')), `${ind}}`],
    });
  }
  return items;
}

function filterHeaders(spec: FilterSpec): string[] {
  const h: string[] = [];
  if (spec.localName !== undefined) h.push(`local_name ${spec.localName}`);
  if (spec.local !== undefined) h.push(`local ${spec.local}`);
  if (spec.remote !== undefined) h.push(`remote ${spec.remote}`);
  if (spec.protocol !== undefined) h.push(`protocol ${spec.protocol}`);
  return h;
}

/** The whole `doveconf -n` text. */
export function dumpNonDefault(config: DovecotConfig, opts: DumpOptions = {}): string {
  const out: string[] = [
    `# ${opts.version ?? 'Sealmail'}: ${config.path}`,
    osLine(),
    `# Hostname: ${hostname()}`,
  ];
  const sorted = (items: Item[]) => items.sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0));
  const [global, ...filters] = config.filters;
  const globals = nodeItems(global.root, [], false, opts, DEFAULTS);
  for (const [key, value] of Object.entries(opts.computed ?? {})) {
    if (!global.root.settings.has(key)) globals.push({ sort: key, lines: (ind) => [`${ind}${key} = ${quoteValue(value)}`] });
  }
  for (const item of sorted(globals)) out.push(...item.lines(''));
  for (const f of filters) {
    const items = sorted(nodeItems(f.root, [], true, opts));
    if (items.length === 0) continue;
    const headers = filterHeaders(f.spec);
    headers.forEach((h, i) => out.push(`${'  '.repeat(i)}${h} {`));
    const ind = '  '.repeat(headers.length);
    for (const item of items) out.push(...item.lines(ind));
    for (let i = headers.length - 1; i >= 0; i--) out.push(`${'  '.repeat(i)}}`);
  }
  return out.join('\n') + '\n';
}
