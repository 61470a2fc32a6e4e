/**
 * The auth process (Dovecot's `service auth`, running as
 * `default_internal_user`): the passdbs and userdbs (the SQL connection,
 * dovecot-sql.conf.ext handed down by the master, which read it as root).
 * Login processes reach it over the auth client protocol (authsock/
 * server.ts) on a socket the master bound and passes each connection of,
 * and so do Postfix (service auth's unix listeners, private/auth) and
 * dovecot-lda/doveadm (auth-userdb);
 * the master asks it for userdb lookups after a login (Dovecot's auth
 * master REQUEST/USER), to learn the uid/gid the session is served with.
 */
import type { Socket } from 'node:net';
import type { DovecotConfig } from '../config/settings.js';
import { AuthEngine, setAppPasswordCheck } from '../auth/engine.js';
import { AuthPenalty } from '../auth/penalty.js';
import { AuthClientSession } from '../authsock/server.js';
import { AuthUserdbSession } from '../authsock/userdb.js';
import { Logger } from '../log/logger.js';
import { sendTo, type ChildMessage } from './process-model.js';
import { Liveness } from './retire.js';
import { answerFlush } from './auth-cache-flush.js';
import type { Fields } from '../auth/databases.js';

/** How long a finished login's userdb_* fields wait for the master's lookup (Dovecot's MASTER_AUTH_SERVER_TIMEOUT_SECS, 150 s). */
const PREFETCH_TTL_MS = 150_000;
/** The master's app-password check: an scrypt per app password of the user, well under this. */
const APP_PASSWORD_TIMEOUT_MS = 30_000;

export function runAuthProcess(config: DovecotConfig): void {
  const log = new Logger('auth');
  // app passwords live in the users' homes, which default_internal_user cannot read: the master (root) checks them
  const appWaits = new Map<number, (hit: { id: string; name: string } | null) => void>();
  let appSeq = 0;
  setAppPasswordCheck((home, password) => new Promise((resolve) => {
    const id = ++appSeq;
    // a master that does not answer (going away) fails the login as a wrong password would, never hangs it
    const timer = setTimeout(() => { appWaits.delete(id); resolve(null); }, APP_PASSWORD_TIMEOUT_MS);
    appWaits.set(id, (hit) => { clearTimeout(timer); resolve(hit); });
    sendTo(process, { t: 'app-password', id, home, password });
  }));
  const engine = new AuthEngine(config, 'imap');
  let smtp: AuthEngine | null = null;
  let userdb: AuthEngine | null = null;
  const smtpEngine = () => (smtp ??= new AuthEngine(config, 'smtp'));
  const userdbEngine = () => (userdb ??= new AuthEngine(config, 'lda'));
  const penalty = new AuthPenalty(); // Dovecot's anvil: one per server, the logins of every login process count
  /** The passdb's userdb_* fields of finished logins (prefetch: userdb_quota_rule=…), until the master's userdb lookup takes them. */
  const prefetched = new Map<string, Fields>();
  const live = new Liveness(); // auth client connections: a retired process exits after the last
  process.on('message', (m: ChildMessage, handle?: unknown) => {
    if (m.t === 'auth-conn' && handle) {
      const s = handle as Socket;
      s.on('error', () => s.destroy());
      live.track(s);
      // Postfix's SASL (service auth's unix listeners) and dovecot-lda/doveadm's auth-userdb, as delivery-services.ts serves them
      if (m.kind === 'auth') { new AuthClientSession(s, config, smtpEngine(), penalty, log); return; }
      if (m.kind === 'auth-userdb') { new AuthUserdbSession(s, userdbEngine(), log); return; }
      new AuthClientSession(s, config, engine, penalty, log, (cuid, id, fields) => {
        const ref = `${cuid}:${id}`;
        prefetched.set(ref, fields);
        setTimeout(() => prefetched.delete(ref), PREFETCH_TTL_MS).unref();
      });
    } else if (m.t === 'userdb') {
      const fields = prefetched.get(m.authRef) ?? [];
      prefetched.delete(m.authRef);
      engine.lookupUser(m.user, { service: m.service, rip: m.rip, lip: m.lip }, fields, true).then(
        (u) => sendTo(process, { t: 'userdb-reply', id: m.id, result: u.result, fields: u.fields }),
        (e: Error) => { log.error(`userdb lookup: ${e.message}`); sendTo(process, { t: 'userdb-reply', id: m.id, result: 'tempfail', fields: [] }); });
    } else if (m.t === 'auth-cache-flush') answerFlush(m, (r) => sendTo(process, r));
    else if (m.t === 'penalty-dump') sendTo(process, { t: 'penalty-dumped', id: m.id, rows: penalty.dump() });
    else if (m.t === 'app-password-reply') { appWaits.get(m.id)?.(m.hit); appWaits.delete(m.id); }
    else if (m.t === 'shutdown') void engine.close().finally(() => process.exit(0));
    else if (m.t === 'retire') live.retire();
  });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => undefined);
  sendTo(process, { t: 'ready' });
}
