/**
 * deliver_log_format (Dovecot's mail-deliver.c mail_deliver_log): the line
 * LMTP logs for each copy it saves or fails to save, `msgid=%m: %$` by
 * default, %$ being "saved mail to INBOX" / "save failed to …". Variables:
 * %m / %{msgid} (Message-ID, "unspecified" without one), %s / %{subject},
 * %f / %{from} (the From header's address), %e / %{from_envelope} (MAIL
 * FROM), %{to_envelope} (RCPT TO), %p / %{size} (the stored size), %w /
 * %{vsize} (with CRLF line ends); values cut to 80 characters as Dovecot's
 * str_sanitize does. %{delivery_time}, %{session_time}, %{storage_id} and
 * %{flags} are not kept and expand to nothing.
 */
import type { DovecotConfig } from '../config/settings.js';
import { expandLogFormat } from '../util/percent-vars.js';

export interface DeliverLogVars {
  msgid: string;
  subject: string;
  from: string;
  fromEnvelope: string;
  toEnvelope: string;
  size: number;
  vsize: number;
}

const cut = (v: string) => (v.length > 80 ? `${v.slice(0, 77)}...` : v);

/** The first header `name` of a header block, unfolded, or ''. */
export function headerValue(head: string, name: string): string {
  const m = new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)`, 'im').exec(head);
  return m ? m[1].replace(/\r?\n[ \t]+/g, ' ').trim() : '';
}

/** The address of a From header value: inside <…>, else the value. */
export function fromAddress(value: string): string {
  const lt = value.lastIndexOf('<');
  const gt = value.lastIndexOf('>');
  return lt >= 0 && gt > lt ? value.slice(lt + 1, gt) : value;
}

export function deliverLogLine(config: DovecotConfig, v: DeliverLogVars, msg: string): string {
  const [msgid, subject, from, env, to] = [v.msgid, v.subject, v.from, v.fromEnvelope, v.toEnvelope].map(cut);
  return expandLogFormat(config.get('deliver_log_format', { protocol: 'lmtp' }), {
    m: msgid, msgid, s: subject, subject, f: from, from, e: env, from_envelope: env, to_envelope: to,
    p: String(v.size), size: String(v.size), w: String(v.vsize), vsize: String(v.vsize), $: msg,
  });
}
