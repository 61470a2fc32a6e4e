/**
 * pop3_logout_format (Dovecot's pop3-client.c client_stats): %t/%p TOP
 * count/bytes, %r/%b RETR count/bytes, %d/%m deleted/messages, %s total
 * size, %i/%o input/output bytes, their long names, `%{deleted_bytes}`,
 * and the user's %{user} %{username} %{domain}. %u (uidl_change) is not
 * computed: it expands to nothing.
 */
import type { DovecotConfig } from '../config/settings.js';
import type { Pop3Stats } from './transaction.js';
import { expandPercent } from './uidl.js';

export function logoutLine(config: DovecotConfig, user: string, s: Pop3Stats, io: { input: number; output: number }): string {
  const del = s.deleteSuccess;
  const at = user.indexOf('@');
  const table: Record<string, string> = {
    t: String(s.topCount), top_count: String(s.topCount),
    p: String(s.topBytes), top_bytes: String(s.topBytes),
    r: String(s.retrCount), retr_count: String(s.retrCount),
    b: String(s.retrBytes), retr_bytes: String(s.retrBytes),
    d: del ? String(s.deletedCount) : '0', deleted_count: del ? String(s.deletedCount) : '0',
    m: String(s.messageCount), message_count: String(s.messageCount),
    s: String(s.messageBytes), message_bytes: String(s.messageBytes),
    i: String(io.input), input: String(io.input),
    o: String(io.output), output: String(io.output),
    u: '', uidl_change: '',
    deleted_bytes: del ? String(s.deletedBytes) : '0',
    user, username: at < 0 ? user : user.slice(0, at), domain: at < 0 ? '' : user.slice(at + 1),
    n: at < 0 ? user : user.slice(0, at),
  };
  return expandPercent(config.get('pop3_logout_format', { protocol: 'pop3' }), (k) => table[k] ?? '');
}
