/**
 * Recipient addresses to user names: Dovecot's `recipient_delimiter` (any of
 * its characters, the first one found in the local part) splits
 * `user+detail@domain` into the user looked up in the userdb and the detail
 * LMTP files into (`lmtp_save_to_detail_mailbox`). Shared by LMTP and the
 * quota-status policy service, which must find the same user.
 */

export function splitDetail(address: string, delimiters: string): { user: string; detail: string } {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? '' : address.slice(at);
  if (!delimiters) return { user: address, detail: '' };
  let cut = -1;
  for (const d of delimiters) { const i = local.indexOf(d); if (i >= 0 && (cut < 0 || i < cut)) cut = i; }
  return cut < 0 ? { user: address, detail: '' } : { user: local.slice(0, cut) + domain, detail: local.slice(cut + 1) };
}
