/**
 * The TLS server context of a process: built once per certificate set and
 * shared by every connection it serves (imaps, STARTTLS for IMAP and
 * ManageSieve), as Dovecot's login processes share one
 * (lib-ssl-iostream's ssl_iostream_server_context_cache_get: one SSL_CTX per
 * distinct ssl settings, made on first use and kept for the process's life).
 * A context of its own per connection cost ~22 KiB and 2–3.5 ms of CPU each.
 *
 * Sharing it also shares its session-ticket keys (Node makes them per
 * context): a client that comes back to the same process with its ticket
 * resumes the session instead of a full handshake, as with Dovecot, whose
 * `ssl_options` leaves tickets on unless `no_ticket` is set. Dovecot's
 * OpenSSL also keeps a server-side session-ID cache per context; Node turns
 * OpenSSL's internal one off, so resumption here is by ticket only
 * (dovecot-compat.md).
 *
 * Replaceable: setTlsMaterial() (a reload with new certificates) makes the
 * next connection get a context built from the new material; connections
 * already open keep the one they started with.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { TlsMaterial } from './listeners.js';

export class ServerTlsContext {
  private context: SecureContext | null = null;

  constructor(private tlsMaterial: TlsMaterial) {}

  /**
   * The context for a connection starting now. Built on first use, so a key
   * that does not load fails the connection that needs it, as it did when
   * every connection built its own.
   */
  current(): SecureContext {
    if (!this.context) {
      const m = this.tlsMaterial;
      this.context = createSecureContext({ cert: m.cert, key: m.key, passphrase: m.passphrase, minVersion: m.minVersion });
    }
    return this.context;
  }

  /** New certificates (a reload): connections from now on use a context built from them. */
  setTlsMaterial(m: TlsMaterial): void {
    this.tlsMaterial = m;
    this.context = null;
  }
}
