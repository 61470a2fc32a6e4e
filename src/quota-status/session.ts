/**
 * Dovecot's quota-status service in Postfix policy-delegation mode
 * (`check_policy_service unix:private/quota-status`, spec §4): name=value
 * requests ending in an empty line, `action=…` replies, several requests
 * per connection. Recipient lowercased and detail-stripped; unknown user →
 * quota_status_nouser, over quota (src/quota/quota.ts: used + size > limit
 * + quota_grace, or already over) →
 * quota_status_overquota, otherwise quota_status_success. The user's quota
 * comes from the mail-user service (src/mailuser), as LMTP's and IMAP's do. Unset, they are
 * Dovecot 2.3's quota-status.c defaults: `OK`, `REJECT Unknown user` and
 * `554 5.2.2 <quota_exceeded_message>` (ISPmail sets DUNNO, DUNNO and
 * "552 5.2.2 Mailbox is full" in 90-quota.conf).
 */
import type { Duplex } from 'node:stream';
import type { AuthEngine } from '../auth/engine.js';
import type { DovecotConfig } from '../config/settings.js';
import { splitDetail } from '../auth/recipient.js';
import { MailAccessRefused, openMailUser } from '../mailuser/open-mail-user.js';
import { Logger } from '../log/logger.js';
import { faultText, guarded } from '../util/fault.js';
import type { Fields } from '../auth/databases.js';

/**
 * Does a message of `size` bytes fit the user's INBOX: null when it does,
 * else the policy action for over quota (quota_status_overquota). Throws
 * when the usage cannot be read.
 */
export async function overQuotaAction(config: DovecotConfig, user: string, fields: Fields, size: number): Promise<string | null> {
  const plugin = config.plugin({ protocol: 'quota-status' });
  // quota-status.c links the quota plugin in: every user has quota here, whatever their mail_plugins
  const { quota } = await openMailUser(config, { user, fields, protocol: 'quota-status', crypt: { kind: 'none' } });
  // quota-status.c tests at least one byte against INBOX's limits (grace included)
  if (quota && !(await quota.fits('INBOX', [Math.max(1, size)]))) return plugin.quota_status_overquota ?? `554 5.2.2 ${quota.exceededMessage()}`;
  return null;
}

export class QuotaStatusSession {
  private buf = '';
  private running: Promise<void> = Promise.resolve();
  /** quota-status.c keeps the attributes of the connection: a request without size= reuses the last one. */
  private size = 0;

  /** `overQuota`: where the usage is read (server/lmtp-process.ts: in the mail process of the user's uid). */
  constructor(private readonly sock: Duplex, private readonly config: DovecotConfig, private readonly auth: AuthEngine,
    private readonly overQuota: typeof overQuotaAction = overQuotaAction) {
    // the connection's fault boundary: an exception ends this policy connection (Postfix defers and reconnects)
    const fault = (e: unknown) => { new Logger('quota-status').error(`Internal error: ${faultText(e)}`); sock.destroy(); };
    sock.on('data', guarded(fault, (d: Buffer) => {
      this.buf += d.toString('utf8');
      let i;
      while ((i = this.buf.indexOf('\n\n')) >= 0) {
        const req = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        this.running = this.running.then(() => this.answer(req)).catch(fault);
      }
      if (this.buf.length > 65536) sock.destroy();
    }));
    sock.on('error', () => sock.destroy());
  }

  private async answer(req: string): Promise<void> {
    const attrs = new Map(req.split('\n').map((l) => { const e = l.indexOf('='); return [l.slice(0, e), l.slice(e + 1)] as [string, string]; }));
    const plugin = this.config.plugin({ protocol: 'quota-status' });
    const success = plugin.quota_status_success ?? 'OK';
    const nouser = plugin.quota_status_nouser ?? 'REJECT Unknown user';
    if (attrs.has('size')) this.size = Number(attrs.get('size')) || 0;
    const rcpt = (attrs.get('recipient') ?? '').toLowerCase();
    let action = success;
    if (!rcpt) action = success;
    else {
      const { user } = splitDetail(rcpt, this.config.get('recipient_delimiter', { protocol: 'lmtp' }));
      const r = await this.auth.lookupUser(user, { service: 'quota-status' });
      if (r.result !== 'ok') action = r.result === 'tempfail' ? 'DEFER_IF_PERMIT Temporary user lookup failure' : nouser;
      else {
        try {
          action = await this.overQuota(this.config, r.user, r.fields, this.size) ?? success;
        } catch (e) {
          const name = r.user.length > 256 ? r.user.slice(0, 256) + '...' : r.user;
          if (e instanceof MailAccessRefused) {
            // a user whose mail may not be opened (uid outside first_valid_uid…): quota-status.c's failed lookup
            new Logger('quota-status').error(`Failed to lookup user ${name}: ${e.message}`);
            action = 'DEFER_IF_PERMIT Temporary internal error';
          } else {
            // a usage that cannot be read (a home path over the file system's limits, a broken maildirsize…):
            // quota-status.c's QUOTA_ALLOC_RESULT_TEMPFAIL answer, and the connection goes on
            new Logger('quota-status').error(`quota check of ${name} failed: ${(e as Error).message.slice(0, 512)}`);
            action = 'DEFER_IF_PERMIT Internal quota calculation error';
          }
        }
      }
    }
    this.sock.write(`action=${action}\n\n`);
  }
}
