/**
 * The auth process (Dovecot's `service auth`, running as
 * `default_internal_user`): the passdbs and userdbs (the SQL connection,
 * dovecot-sql.conf.ext handed down by the master, which read it as root).
 * Login processes reach it over the auth client protocol (authsock/
 * server.ts) on a socket the master bound and passes each connection of;
 * the master asks it for userdb lookups after a login (Dovecot's auth
 * master REQUEST/USER), to learn the uid/gid the session is served with.
 */
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { AuthEngine } from '../auth/engine.js';
import { AuthPenalty } from '../auth/penalty.js';
import { AuthClientSession } from '../authsock/server.js';
import { Logger } from '../log/logger.js';
import { sendTo, type ChildMessage } from './process-model.js';

export function runAuthProcess(config: DovecotConfig): void {
  const log = new Logger('auth');
  const engine = new AuthEngine(config, 'imap');
  const penalty = new AuthPenalty(); // Dovecot's anvil: one per server, the logins of every login process count
  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'auth-conn' && handle) {
      const s = handle as Socket;
      s.on('error', () => s.destroy());
      new AuthClientSession(s, config, engine, penalty, log);
    } else if (m.t === 'userdb') {
      engine.lookupUser(m.user, { service: m.service, rip: m.rip, lip: m.lip }).then(
        (u) => sendTo(process, { t: 'userdb-reply', id: m.id, result: u.result, fields: u.fields }),
        (e: Error) => { log.error(`userdb lookup: ${e.message}`); sendTo(process, { t: 'userdb-reply', id: m.id, result: 'tempfail', fields: [] }); });
    } else if (m.t === 'shutdown') void engine.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined);
  sendTo(process, { t: 'ready' });
}
