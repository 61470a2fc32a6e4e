/**
 * The TLS settings of a login service as Dovecot's login processes take them
 * (login-common's ssl settings, lib-ssl-iostream's iostream-openssl-context.c):
 * `ssl_cert`/`ssl_key` (+`ssl_key_password`), a second pair in
 * `ssl_alt_cert`/`ssl_alt_key` (an ECDSA beside an RSA certificate; OpenSSL
 * picks by what the client supports), `ssl_cipher_list` (TLS ≤ 1.2),
 * `ssl_cipher_suites` (TLS 1.3), `ssl_curve_list`, `ssl_prefer_server_ciphers`,
 * `ssl_dh`, `ssl_min_protocol` — and the same per name: a `local_name NAME {}`
 * section whose names (`*.` wildcards, several per section) match the
 * client's SNI gives that connection its own certificate and settings
 * (Dovecot's ssl_servername_callback re-reads the settings for the name).
 */
import { createHash } from 'node:crypto';
import { localNameMatches, type DovecotConfig, type FilterContext } from '../config/settings.js';

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface TlsSettings {
  cert: string;
  key: string;
  passphrase?: string;
  altCert?: string;
  altKey?: string;
  /** OpenSSL's cipher list for TLS ≤ 1.2 (`ssl_cipher_list`, only when set: unset, Node's stricter default). */
  ciphers?: string;
  /** TLS 1.3 suites (`ssl_cipher_suites`, colon-separated). */
  cipherSuites?: string;
  /** `ssl_curve_list`, colon-separated. */
  curves?: string;
  honorCipherOrder: boolean;
  /** `ssl_dh`: DH parameters (PEM) for the DHE ciphers. */
  dhparam?: string;
  minVersion?: TlsVersion;
  /** Where the certificate and key came from, for error lines (`file:line` or the `<path`). */
  sources: string[];
  /** Identity of the values above: contexts are shared between names with the same settings. */
  id: string;
}

export interface TlsMaterial extends TlsSettings {
  /**
   * The settings for an SNI name when a `local_name` section matches it
   * (null: the defaults above). The same object for the same matching
   * sections, so a context is built once per section, not per name.
   */
  forName?(servername: string): TlsSettings | null;
  /** Every `local_name` section's settings (a reload checks that each loads). */
  named(): TlsSettings[];
}

/** Dovecot's ssl_min_protocol names (TLSv1.2 …) map 1:1 to Node's; ANY / SSLv3 mean "no floor". */
export function tlsMinVersion(v: string): TlsVersion | undefined {
  return (['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const).find((x) => x === v);
}

const KEYS = ['ssl_cert', 'ssl_key', 'ssl_key_password', 'ssl_alt_cert', 'ssl_alt_key', 'ssl_cipher_list', 'ssl_cipher_suites', 'ssl_curve_list', 'ssl_prefer_server_ciphers', 'ssl_dh', 'ssl_min_protocol'];

function settingsFor(config: DovecotConfig, ctx: FilterContext | undefined): TlsSettings | null {
  const get = (k: string) => config.get(k, ctx);
  const cert = get('ssl_cert');
  const key = get('ssl_key');
  if (!cert || !key) return null;
  const where = (k: string) => {
    const e = config.source(k, ctx);
    return e ? (e.written ? `${k} = <${e.written}` : `${k} at ${e.origin.file}:${e.origin.line}`) : k;
  };
  const opt = (k: string) => (config.isSet(k, ctx) && get(k) ? get(k) : undefined);
  const s: Omit<TlsSettings, 'id'> = {
    cert, key,
    passphrase: get('ssl_key_password') || undefined,
    altCert: get('ssl_alt_cert') || undefined,
    altKey: get('ssl_alt_key') || undefined,
    ciphers: opt('ssl_cipher_list'),
    cipherSuites: opt('ssl_cipher_suites'),
    curves: opt('ssl_curve_list'),
    honorCipherOrder: config.getBool('ssl_prefer_server_ciphers', ctx),
    dhparam: get('ssl_dh') || undefined,
    minVersion: tlsMinVersion(get('ssl_min_protocol')),
    sources: [where('ssl_cert'), where('ssl_key'), ...(get('ssl_alt_cert') ? [where('ssl_alt_cert'), where('ssl_alt_key')] : [])],
  };
  const h = createHash('sha256');
  for (const k of KEYS) h.update(`${k}\0${get(k)}\0`);
  return { ...s, id: h.digest('hex') };
}

/** The TLS material of the tree (null when ssl = no or no certificate is configured). */
export function tlsMaterial(config: DovecotConfig): TlsMaterial | null {
  if (config.get('ssl') === 'no') return null;
  const base = settingsFor(config, undefined);
  if (!base) return null;
  // local_name sections that set any TLS setting, each with its names
  const sections = config.filters
    .map((f, i) => ({ i, names: f.spec.localName?.split(' ') ?? [], f }))
    .filter((s) => s.names.length && s.f.spec.protocol === undefined && s.f.spec.local === undefined && s.f.spec.remote === undefined
      && KEYS.some((k) => s.f.root.settings.has(k)));
  const byId = new Map<string, TlsSettings>();
  const share = (s: TlsSettings): TlsSettings => {
    const known = byId.get(s.id);
    if (known) return known;
    byId.set(s.id, s);
    return s;
  };
  const cache = new Map<string, TlsSettings | null>();
  return {
    ...base,
    forName(servername: string) {
      const name = servername.toLowerCase();
      if (!sections.length || name.length > 253) return null;
      const hit = cache.get(name);
      if (hit !== undefined) return hit;
      const matched = sections.some((s) => s.names.some((n) => localNameMatches(n, name)));
      const s = matched ? settingsFor(config, { localName: name }) : null;
      const r = s && s.id !== base.id ? share(s) : null;
      // bounded: a client may send any name; unmatched names all share the null answer anyway
      if (cache.size < 4096) cache.set(name, r);
      return r;
    },
    named() {
      // a name each section matches: its first mask with every wildcard filled in
      return sections.map((s) => settingsFor(config, { localName: s.names[0].replace(/[*?]/g, 'x') })).filter((s): s is TlsSettings => s !== null);
    },
  };
}

/** Material from one certificate and key and nothing else (the demo, tests). */
export function simpleTlsMaterial(cert: string, key: string): TlsMaterial {
  const id = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { cert, key, honorCipherOrder: false, sources: ['ssl_cert', 'ssl_key'], id, named: () => [] };
}
