/**
 * TCP options Node has no API for, through the small native addon
 * native/tcp-sockopt.c (dist/native/tcp-sockopt.node):
 *
 * TCP_QUICKACK after each flush of a session's output and after its input
 * was handled, as Dovecot's ostream-file.c sets it on every uncork ("disable
 * delayed ACKs to reduce latency. Note that this needs to be set
 * repeatedly"). Linux puts a request/response connection into "ping-pong"
 * mode, where the ACK of what the client sent waits for our next reply or
 * the 40 ms delayed-ACK timer. A client with Nagle on (Python's imaplib,
 * most libraries' default) that writes an APPEND literal and then its CRLF
 * in a second send() holds that CRLF until the literal is ACKed: 40 ms per
 * APPEND. TCP_QUICKACK leaves ping-pong mode and sends the pending ACK now.
 *
 * Best effort: without the addon (no C compiler at install) or on a socket
 * that is no TCP socket (a unix socket, a test's stream) nothing happens.
 */
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

const IPPROTO_TCP = 6;
/** <netinet/tcp.h> on Linux. */
export const TCP_NODELAY = 1;
export const TCP_QUICKACK = 12;

interface Addon { setInt(fd: number, level: number, name: number, value: number): number; getInt(fd: number, level: number, name: number): number }

let addon: Addon | null = null;
/** Why the addon could not be loaded (said once at start by the server); null when loaded. */
export let tcpAddonError: string | null = null;
try {
  // from dist/src/util/ to dist/native/, where scripts/build-native.ts puts it
  addon = createRequire(import.meta.url)('../../native/tcp-sockopt.node') as Addon;
} catch (e) {
  tcpAddonError = `${(e as Error).message.split('\n')[0]} (built by npm run build: needs a C compiler)`;
}

/** The descriptor of a net.Socket, or of the TCP socket under a TLSSocket (same fd); null for anything else. */
function tcpFd(s: Duplex): number | null {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** Send the ACK of what we read now, and keep ACKing at once until the kernel deems the connection interactive again. */
export function quickAck(s: Duplex): void {
  if (!addon) return;
  const fd = tcpFd(s);
  if (fd !== null) addon.setInt(fd, IPPROTO_TCP, TCP_QUICKACK, 1);
}

/** An integer TCP option of the socket under `s` (getsockopt), or null where it cannot be read. */
export function tcpOption(s: Duplex, name: number): number | null {
  const fd = tcpFd(s);
  if (!addon || fd === null) return null;
  const v = addon.getInt(fd, IPPROTO_TCP, name);
  return v < 0 ? null : v;
}
