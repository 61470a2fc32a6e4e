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
 *
 * Client certificates (`ssl_verify_client_cert`, master-service-ssl-settings.c):
 * `ssl_ca` holds the CA certificates that sign them and any CRLs (Dovecot
 * reads both kinds of PEM block from that one file). With `ssl_require_crl =
 * yes` (the default) OpenSSL checks every certificate of the chain against a
 * CRL of its issuer (X509_V_FLAG_CRL_CHECK | CRL_CHECK_ALL), so a CA whose
 * CRL is not in `ssl_ca` makes every certificate it signed invalid ("unable
 * to get certificate CRL"); with `no`, CRLs are not looked at.
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
  /** `ssl_verify_client_cert`: ask the client for a certificate. */
  verifyClient: boolean;
  /** `ssl_ca`'s certificates (PEM blocks): the CAs a client certificate must chain to. */
  ca?: string[];
  /** The CRLs the verification checks against (`ssl_require_crl = yes`; none when `no`). */
  crl?: string[];
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

const KEYS = ['ssl_cert', 'ssl_key', 'ssl_key_password', 'ssl_alt_cert', 'ssl_alt_key', 'ssl_cipher_list', 'ssl_cipher_suites', 'ssl_curve_list', 'ssl_prefer_server_ciphers', 'ssl_dh', 'ssl_min_protocol',
  'ssl_ca', 'ssl_verify_client_cert', 'ssl_require_crl'];

/**
 * A CRL whose issuer (`CN=Sealmail: no CRL in ssl_ca`, a key thrown away)
 * signs no certificate: given to OpenSSL when `ssl_require_crl = yes` and
 * `ssl_ca` has no CRL, it turns CRL checking on (Node sets the CRL_CHECK
 * flags only with a CRL) without covering any CA, so a client certificate
 * fails as Dovecot's does: "unable to get certificate CRL". Never matched to
 * a certificate, so its signature and dates are never checked.
 */
const NO_CRL = `-----BEGIN X509 CRL-----
MIG/MGYCAQEwCgYIKoZIzj0EAwIwJTEjMCEGA1UEAwwaU2VhbG1haWw6IG5vIENS
TCBpbiBzc2xfY2EXDTI2MTIwNzIxNTUyMloYDzIxMjYxMTEzMjE1NTIyWqAOMAww
CgYDVR0UBAMCAQEwCgYIKoZIzj0EAwIDSQAwRgIhAOc5UWM8ntEOOwCsY0118HnD
bIYx4x0xfUiq6gnaFKmnAiEAwMOlV69gB5KIoGh7z6NOWjcXnghHnPnBmYdXzhUh
f88=
-----END X509 CRL-----
`;

/** The PEM blocks of `text` by label (CERTIFICATE, X509 CRL); whatever lies between blocks is ignored, as OpenSSL's PEM reader ignores it. */
export function pemBlocks(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let at = 0;
  for (;;) {
    const begin = text.indexOf('-----BEGIN ', at);
    if (begin < 0) return out;
    const labelEnd = text.indexOf('-----', begin + 11);
    if (labelEnd < 0) return out;
    const label = text.slice(begin + 11, labelEnd);
    const endMark = `-----END ${label}-----`;
    const end = text.indexOf(endMark, labelEnd + 5);
    if (end < 0) return out;
    const list = out.get(label) ?? [];
    list.push(`${text.slice(begin, end + endMark.length)}\n`);
    out.set(label, list);
    at = end + endMark.length;
  }
}

/** ssl_ca's certificates and CRLs as the verification uses them (tls-settings.ts header). */
function clientCaSettings(caText: string, verify: boolean, requireCrl: boolean): Pick<TlsSettings, 'verifyClient' | 'ca' | 'crl'> {
  if (!verify) return { verifyClient: false };
  const blocks = pemBlocks(caText);
  const ca = [...(blocks.get('CERTIFICATE') ?? []), ...(blocks.get('TRUSTED CERTIFICATE') ?? [])];
  const crls = blocks.get('X509 CRL') ?? [];
  return { verifyClient: true, ca, crl: requireCrl ? (crls.length ? crls : [NO_CRL]) : undefined };
}

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
    ...clientCaSettings(get('ssl_ca'), config.getBool('ssl_verify_client_cert', ctx), config.getBool('ssl_require_crl', ctx)),
    sources: [where('ssl_cert'), where('ssl_key'), ...(get('ssl_alt_cert') ? [where('ssl_alt_cert'), where('ssl_alt_key')] : [])],
  };
  const h = createHash('sha256');
  for (const k of KEYS) h.update(`${k}\0${get(k)}\0`);
  return { ...s, id: h.digest('hex') };
}

/** Dovecot's settings check (master-service-ssl-settings.c), which refuses to start on it; null when fine. */
export function tlsSettingsError(config: DovecotConfig): string | null {
  if (config.get('ssl') === 'no') return null;
  if (config.getBool('ssl_verify_client_cert') && !config.get('ssl_ca')) return 'ssl_verify_client_cert set, but ssl_ca not';
  return null;
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
  return { cert, key, honorCipherOrder: false, verifyClient: false, sources: ['ssl_cert', 'ssl_key'], id, named: () => [] };
}
