/**
 * The master's admin socket, `base_dir/sealmail-admin` (root only, mode
 * 0600): Sealmail's equivalent of what `doveadm who` and `doveadm kick` ask
 * Dovecot's anvil (CONNECT-DUMP) and then do with kill(2). The master knows
 * every logged-in IMAP and ManageSieve session (connection-table.ts, or the
 * root master's routing); the socket lists them and ends the ones named.
 *
 * Protocol (one request per connection, lines end in LF, fields in TAB):
 *   LIST               → one `key user service pid ip` line per session, then an empty line
 *   KICK key [key …]   → `OK n` (n sessions told to end)
 *   CACHE-FLUSH [user …] → `OK n` (n auth cache entries removed: every
 *                        entry, or the users'; Dovecot's auth-master CACHE-FLUSH)
 *   PENALTY            → one `ip penalty last_penalty last_update` line per client
 *                        address with auth failures (anvil's PENALTY-DUMP), then an empty line
 *   LOG-ERRORS         → one `type timestamp prefix text` line per kept warning or
 *                        error, oldest first, then an empty line (Dovecot's
 *                        base_dir/log-errors socket; log-error-buffer.ts)
 * `service` is Dovecot's anvil service name (imap, sieve); `key` is opaque.
 * User names are sent with TAB, LF and CR replaced by a space.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DovecotConfig } from '../config/settings.js';
import { logErrors } from '../log/log-error-buffer.js';
import type { PenaltyRow } from '../auth/penalty.js';

export const ADMIN_SOCKET_NAME = 'sealmail-admin';
/** A request line longer than this is refused (a KICK of every session fits many times over). */
const MAX_REQUEST = 1024 * 1024;

export interface AdminSession { key: string; user: string; service: string; pid: number; ip: string }

/** What the master answers with. */
export interface AdminTarget {
  sessions(): AdminSession[];
  /** End the sessions named; returns how many were told to. */
  kick(keys: string[]): number;
  /** sealadm auth cache flush: the passdb cache entries removed in every process holding one. */
  flushAuthCache(users: string[]): Promise<number>;
  /** sealadm penalty: the auth penalty rows (anvil's PENALTY-DUMP). */
  penalties(): Promise<PenaltyRow[]>;
}

export function adminSocketPath(config: DovecotConfig): string {
  return join(config.get('base_dir') || '/run/dovecot', ADMIN_SOCKET_NAME);
}

const clean = (s: string) => s.replace(/[\t\r\n]/g, ' ');

async function answer(target: AdminTarget, line: string): Promise<string> {
  const [cmd, ...args] = line.split('\t');
  if (cmd === 'CACHE-FLUSH') return `OK\t${await target.flushAuthCache(args.filter(Boolean))}\n`;
  if (cmd === 'LIST') return target.sessions().map((s) => [s.key, clean(s.user), s.service, s.pid, s.ip].join('\t') + '\n').join('') + '\n';
  if (cmd === 'KICK') return `OK\t${target.kick(args)}\n`;
  if (cmd === 'PENALTY') return (await target.penalties()).map((r) => [clean(r.ident), r.penalty, r.lastPenalty, r.lastUpdate].join('\t') + '\n').join('') + '\n';
  if (cmd === 'LOG-ERRORS') return logErrors.all().map((e) => [e.type, e.timestamp, clean(e.prefix), clean(e.text)].join('\t') + '\n').join('') + '\n';
  return 'ERROR\tunknown command\n';
}

/** Bind it (as root, before privileges are dropped): root-owned, 0600. */
export async function openAdminSocket(path: string, target: () => AdminTarget | null): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  rmSync(path, { force: true }); // a previous run's, killed before it could clean up
  const server = createServer((s: Socket) => {
    let buf = '';
    s.on('error', () => s.destroy());
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) { s.destroy(); return; }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const t = target();
      if (!t) { s.end('\n'); return; }
      s.pause(); // one request per connection: nothing more is read
      answer(t, buf.slice(0, nl)).then((a) => s.end(a), () => s.end('ERROR\tinternal error\n'));
    });
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, () => resolve()); });
  chmodSync(path, 0o600);
  server.unref(); // never what keeps the master alive
  return server;
}

export function closeAdminSocket(server: Server | null, path: string): void {
  if (!server) return;
  server.close();
  try { rmSync(path, { force: true }); } catch { /* root-owned base_dir after the drop: replaced at the next start */ }
}
