/**
 * Listeners across a reload (SIGHUP), as Dovecot's master re-uses the
 * sockets of unchanged listeners (services_listen_using): a listener whose
 * service, name, address, port and ssl flag are unchanged stays bound (no
 * connection is refused while the tree is re-read), one no longer in the
 * tree is closed (its connections go on), a new one is bound. A new one
 * that cannot be bound is logged and left out; the others are served.
 */
import type { Logger } from '../log/logger.js';
import { openListeners, type ConnectionHandler, type ListenerSpec, type OpenListener, type TlsMaterial } from './listeners.js';

const keyOf = (s: ListenerSpec) => [s.service, s.name, s.address, s.port, s.ssl].join('\t');

export interface WantedListener { spec: ListenerSpec; onConnection: ConnectionHandler }

/** The listeners to serve after the reload (the kept ones first, in their order). */
export async function rebindListeners(open: OpenListener[], wanted: WantedListener[], tls: TlsMaterial | null, log: Logger): Promise<OpenListener[]> {
  const want = new Map(wanted.map((w) => [keyOf(w.spec), w]));
  const kept: OpenListener[] = [];
  for (const l of open) {
    if (want.has(keyOf(l.spec))) { kept.push(l); want.delete(keyOf(l.spec)); continue; }
    l.server.close(); // stops accepting; handed-off connections are the processes' own
    log.info(`stopped listening on ${l.spec.address}:${l.port} (${l.spec.service}/${l.spec.name})`);
  }
  for (const w of want.values()) {
    try {
      const [l] = await openListeners([w.spec], tls, w.onConnection, { handOff: true });
      kept.push(l);
      log.info(`listening on ${l.spec.address}:${l.port} (${l.spec.service}/${l.spec.name}${l.spec.ssl ? ', ssl' : ''})`);
    } catch (e) {
      log.error((e as Error).message);
    }
  }
  return kept;
}
