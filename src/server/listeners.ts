/**
 * Network listeners from the configuration, as Dovecot's master creates them:
 * `service imap-login { inet_listener imap {…} inet_listener imaps { ssl = yes } }`
 * with addresses from the listener's `address` or the global `listen`
 * ("*" = every IPv4 address, "::" = every IPv6 address), `port = 0` meaning
 * disabled. TLS material comes from ssl_cert/ssl_key (`<file` values).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { noteClientCert } from '../util/tls-client-cert.js';
import { chmod, chown, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ServerTlsContext } from './tls-context.js';
import type { TlsMaterial } from './tls-settings.js';

export interface ListenerSpec {
  service: string;
  name: string;
  address: string;
  port: number;
  ssl: boolean;
  /** `haproxy = yes`: every connection starts with a PROXY header (haproxy.ts). */
  haproxy?: boolean;
}

export type { TlsMaterial } from './tls-settings.js';

export type ConnectionHandler = (socket: Socket | TLSSocket, spec: ListenerSpec) => void;

/** `listen = *, ::` → ["0.0.0.0", "::"] */
export function parseListen(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean).map((a) => (a === '*' ? '0.0.0.0' : a === '[::]' ? '::' : a));
}


/**
 * The inet_listeners of `service <name>` (Dovecot's defaults included) on
 * their addresses: `address`, else the global `listen`; `port = 0` skipped.
 */
export function serviceListenerSpecs(config: { get(k: string): string; services(): { name: string; inetListeners: { name: string; port?: string; address?: string; ssl?: string; haproxy?: string }[] }[] }, service: string): ListenerSpec[] {
  const listen = parseListen(config.get('listen'));
  const specs: ListenerSpec[] = [];
  for (const svc of config.services()) {
    if (svc.name !== service) continue;
    for (const l of svc.inetListeners) {
      const port = Number(l.port ?? 0);
      if (!port) continue; // port = 0 disables a listener, as in Dovecot
      for (const address of l.address ? parseListen(l.address) : listen) specs.push({ service: svc.name, name: l.name, address, port, ssl: l.ssl === 'yes', haproxy: l.haproxy === 'yes' });
    }
  }
  return specs;
}

export interface OpenListener { spec: ListenerSpec; server: Server; port: number }

/**
 * `handOff`: plain TCP servers whose connections stay unread (TLS and the
 * protocol happen in the worker process they are handed to).
 */
export async function openListeners(specs: ListenerSpec[], tls: TlsMaterial | null, onConnection: ConnectionHandler, opts: { handOff?: boolean } = {}): Promise<OpenListener[]> {
  const open: OpenListener[] = [];
  try {
    for (const spec of specs) {
      if (spec.ssl && !tls) throw new Error(`${spec.service}/${spec.name}: ssl = yes needs ssl_cert and ssl_key`);
      const server = opts.handOff
        ? createServer({ pauseOnConnect: true }, (s) => onConnection(s, spec))
        : spec.ssl
        ? createTlsServer(new ServerTlsContext(tls!).current(), (s) => { noteClientCert(s); onConnection(s, spec); })
        : createServer((s) => onConnection(s, spec));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e: NodeJS.ErrnoException) =>
          reject(new Error(`service(${spec.service}): listen(${spec.address}, ${spec.port}) failed: ${e.message}`)));
        // "::" alone would also take IPv4 on Linux; Dovecot binds v6-only there so "*, ::" works.
        server.listen({ host: spec.address, port: spec.port, ipv6Only: spec.address.includes(':') }, () => resolve());
      });
      const addr = server.address();
      open.push({ spec, server, port: typeof addr === 'object' && addr ? addr.port : spec.port });
    }
  } catch (e) {
    await closeListeners(open);
    throw e;
  }
  return open;
}

export async function closeListeners(open: OpenListener[]): Promise<void> {
  await Promise.all(open.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
}

export interface UnixListenerSpec { service: string; path: string; mode: number; uid?: number; gid?: number }
export interface OpenUnixListener { spec: UnixListenerSpec; server: Server }

/**
 * A unix socket listener as Dovecot's master makes one: a stale socket is
 * unlinked, the new one gets the configured mode and owner (Postfix's
 * private/auth, private/dovecot-lmtp), its directory is created if missing.
 * Its connections stay unread: the master hands them to a service process.
 */
/** `handOff`: connections stay unread, for a child process to serve (root-master.ts). */
export async function openUnixListener(spec: UnixListenerSpec, onConnection: (s: Socket) => void, opts: { handOff?: boolean } = {}): Promise<OpenUnixListener> {
  await mkdir(dirname(spec.path), { recursive: true });
  await unlink(spec.path).catch(() => undefined);
  // paused until handed over to the process that serves it (service-processes.ts, root-master.ts)
  const server = createServer({ pauseOnConnect: opts.handOff ?? true }, (s) => onConnection(s));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`service(${spec.service}): listen(${spec.path}) failed: ${e.message}`)));
    server.listen(spec.path, () => resolve());
  });
  await chmod(spec.path, spec.mode);
  if (spec.uid !== undefined || spec.gid !== undefined) await chown(spec.path, spec.uid ?? -1, spec.gid ?? -1);
  return { spec, server };
}
