/**
 * What a TLS client's certificate was worth, as Dovecot's login processes
 * tell it (lib-ssl-iostream: ssl_iostream_has_valid_client_cert /
 * has_broken_client_cert): `none` (no certificate sent, or none asked for:
 * `ssl_verify_client_cert = no`), `valid` (it chains to an `ssl_ca` CA and
 * passed the CRL check), `invalid` (sent, but it does not verify). Only a
 * `valid` one sends `valid-client-cert` with the login to the auth side.
 *
 * Node sets `authorized` only on the sockets of a tls.Server; a TLSSocket
 * made around an accepted socket (STARTTLS, a connection handed to a service
 * or login process) never gets it. What OpenSSL's verification said is then
 * only on the socket's handle (`verifyError()`, the call Node's own
 * tls.Server uses to set `authorized`); no certificate at all reads as an
 * error there too, so the peer certificate is looked at first. The answer
 * is read once, right after the handshake (while the handle exists: a
 * closed socket has none, and its disconnect line still needs the answer),
 * and kept for the socket's life. A handle without that call (another
 * Node) reads as `invalid`: never valid on a guess.
 */
import { TLSSocket } from 'node:tls';

export type ClientCert = 'none' | 'valid' | 'invalid';

const known = new WeakMap<object, ClientCert>();

function verifyError(t: TLSSocket): Error | null | 'unknown' {
  const h = (t as unknown as { _handle?: { verifyError?: () => Error | null } | null })._handle;
  return typeof h?.verifyError === 'function' ? h.verifyError() : 'unknown';
}

/** Reads and keeps the answer for a socket whose handshake just finished (starttls.ts, listeners). */
export function noteClientCert(t: TLSSocket): ClientCert {
  const had = known.get(t);
  if (had) return had;
  const peer = t.getPeerCertificate();
  let v: ClientCert;
  if (!peer || Object.keys(peer).length === 0) v = 'none';
  else if (t.authorized) v = 'valid';
  else if (t.authorizationError) v = 'invalid';
  else v = verifyError(t) === null ? 'valid' : 'invalid';
  known.set(t, v);
  return v;
}

/**
 * The stream's answer (`none` until its handshake finished); undefined when
 * it is no TLS stream of this process (plain, or TLS ended at a proxy).
 */
export function clientCertOf(stream: unknown): ClientCert | undefined {
  if (!(stream instanceof TLSSocket)) return undefined;
  return known.get(stream) ?? 'none';
}
