/**
 * The TLS server contexts of a process: one per distinct set of TLS settings
 * (tls-settings.ts: the defaults, and each `local_name` section's), built on
 * first use and shared by every connection it serves (imaps, STARTTLS for
 * IMAP, POP3 and ManageSieve), as Dovecot's login processes share one
 * (lib-ssl-iostream's ssl_iostream_server_context_cache_get: one SSL_CTX per
 * distinct ssl settings, made on first use and kept for the process's life).
 * A context of its own per connection cost ~22 KiB and 2–3.5 ms of CPU each.
 * The client's SNI name picks the context during the handshake
 * (SNICallback), as Dovecot's ssl_servername_callback does.
 *
 * Sharing it also shares its session-ticket keys (Node makes them per
 * context): a client that comes back to the same process with its ticket
 * resumes the session instead of a full handshake, as with Dovecot, whose
 * `ssl_options` leaves tickets on unless `no_ticket` is set. Dovecot's
 * OpenSSL also keeps a server-side session-ID cache per context; Node turns
 * OpenSSL's internal one off, so resumption here is by ticket only
 * (dovecot-compat.md).
 *
 * Client certificates (`ssl_verify_client_cert`): the handshake asks for
 * one and never fails over it (rejectUnauthorized false), as Dovecot's
 * login processes set allow_invalid_cert ("If the client cert is invalid,
 * we'll reply NO to the login command", login-common/client-common.c); what
 * the certificate was worth is read after the handshake
 * (util/tls-client-cert.ts) and refused at login by the auth side. Whether to
 * ask is decided by the default settings, not per SNI name: Node fixes it
 * when the socket is made, before the client's name is known.
 *
 * Replaceable: setTlsMaterial() (a reload with new certificates) makes the
 * next connection get contexts built from the new material; connections
 * already open keep the one they started with.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { TlsMaterial, TlsSettings } from './tls-settings.js';

/** What a TLS server socket is created with (TLSSocket / tls.createServer options). */
export interface ServerTlsOptions {
  secureContext: SecureContext;
  SNICallback?: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
}

/** A Node secure context from Dovecot's settings; throws OpenSSL's error for a certificate or key that does not load. */
export function secureContextFor(s: TlsSettings): SecureContext {
  const keyOf = (pem: string) => ({ pem, passphrase: s.passphrase });
  const ciphers = [s.cipherSuites, s.ciphers].filter(Boolean).join(':');
  return createSecureContext({
    cert: s.altCert ? [s.cert, s.altCert] : s.cert,
    key: s.altKey ? [keyOf(s.key), keyOf(s.altKey)] : [keyOf(s.key)],
    minVersion: s.minVersion,
    ...(ciphers ? { ciphers } : {}),
    ...(s.curves ? { ecdhCurve: s.curves } : {}),
    ...(s.dhparam ? { dhparam: s.dhparam } : {}),
    honorCipherOrder: s.honorCipherOrder,
    ...(s.verifyClient ? { ca: s.ca, ...(s.crl ? { crl: s.crl } : {}) } : {}),
  });
}

export class ServerTlsContext {
  private contexts = new Map<string, SecureContext>();

  constructor(private tlsMaterial: TlsMaterial) {}

  private contextFor(s: TlsSettings): SecureContext {
    let c = this.contexts.get(s.id);
    if (!c) {
      c = secureContextFor(s);
      this.contexts.set(s.id, c);
    }
    return c;
  }

  /**
   * The options for a connection starting now. Built on first use, so a key
   * that does not load fails the connection that needs it, as it did when
   * every connection built its own.
   */
  current(): ServerTlsOptions {
    const m = this.tlsMaterial;
    const secureContext = this.contextFor(m);
    const verify = m.verifyClient ? { requestCert: true, rejectUnauthorized: false } : {};
    if (!m.forName) return { secureContext, ...verify };
    return {
      secureContext,
      ...verify,
      SNICallback: (servername, cb) => {
        try {
          const s = m.forName!(servername);
          cb(null, s ? this.contextFor(s) : secureContext);
        } catch (e) {
          cb(e as Error);
        }
      },
    };
  }

  /** New certificates (a reload): connections from now on use contexts built from them. */
  setTlsMaterial(m: TlsMaterial): void {
    this.tlsMaterial = m;
    this.contexts = new Map();
  }
}
