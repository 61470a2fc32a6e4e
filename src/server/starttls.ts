/**
 * The server side of STARTTLS (IMAP RFC 3501 §6.2.1, ManageSieve RFC 5804
 * §2.2): the plain socket is wrapped in a TLSSocket and the promise settles
 * exactly once — with the TLS stream after the handshake, or with the
 * handshake's error (bytes that are no ClientHello, a client that rejects
 * the certificate and sends an alert, a client that just goes away). A
 * failed handshake destroys both sockets: the connection ends there, as
 * Dovecot's login processes end it, and no 'error' event is ever left
 * without a listener (an unlistened 'error' is an uncaught exception that
 * would end every session of the process).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { ServerTlsOptions } from './tls-context.js';
import type { Duplex } from 'node:stream';
import { noteClientCert } from '../util/tls-client-cert.js';

/**
 * OpenSSL's error as Dovecot logs it (`SSL_accept() failed: error:0A00010B:SSL
 * routines:ssl3_get_record:wrong version number`), without the thread id and
 * source location Node's message carries.
 */
export function handshakeErrorText(e: Error): string {
  const at = e.message.indexOf('error:');
  if (at < 0) return e.message;
  const f = e.message.slice(at).split(':');
  if (f.length < 5) return e.message;
  // error, code, library, function, reason, then file, line and what OpenSSL adds (the alert number)
  const extra = f.slice(7).join(':').trim();
  return `SSL_accept() failed: ${f.slice(0, 5).join(':')}${extra ? `: ${extra}` : ''}`;
}

/**
 * `context`: the process's shared one (tls-context.ts), asked when STARTTLS
 * comes (after a reload, the new one); a context that cannot be built
 * rejects the promise.
 */
export function serverStartTls(raw: Duplex, context: () => ServerTlsOptions): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      t.destroy();
      raw.destroy();
      reject(new Error(handshakeErrorText(e)));
    };
    const t = new TLSSocket(raw as Socket, { isServer: true, ...context() });
    // the raw socket keeps a listener of its own: the TLSSocket does not always relay its errors
    raw.on('error', (e: Error) => fail(e));
    // `on`, not `once`: OpenSSL can report a second error (the alert, then the reset) on the same socket
    t.on('error', (e: Error) => fail(e));
    t.once('close', () => fail(new Error('Connection closed')));
    t.once('secure', () => { if (!settled) { settled = true; noteClientCert(t); resolve(t); } });
  });
}

/**
 * A connection handed over unread by the master (service-pool.ts) on an
 * `ssl = yes` listener: TLS starts here, in the service process, as the
 * master's own TLS server would have started it.
 */
export function implicitTls(raw: Socket | Duplex, ctx: ServerTlsOptions): TLSSocket {
  raw.on('error', () => raw.destroy());
  const t = new TLSSocket(raw, { isServer: true, ...ctx });
  t.once('secure', () => noteClientCert(t));
  return t;
}
