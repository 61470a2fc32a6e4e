/**
 * A user's mail_plugins as Dovecot's mail-storage-service.c settles them
 * when it prepares a mail user: the userdb's `mail_plugins` field, when the
 * lookup returned one, replaces the setting (it is applied as a setting
 * line over the protocol's configuration), else the setting of the user's
 * protocol (`protocol lmtp { mail_plugins = … }`). The mail-user service
 * (src/mailuser) calls this once per user and hands the list to crypt,
 * quota, Sieve and the protocol layers.
 */
import type { DovecotConfig } from './settings.js';

export function splitPlugins(list: string): string[] {
  return list.split(/[\s,]+/).filter(Boolean);
}

export function resolveMailPlugins(config: DovecotConfig, fields: readonly (readonly [string, string])[], protocol: string): string[] {
  const fromUserdb = fields.find(([k]) => k === 'mail_plugins')?.[1];
  return splitPlugins(fromUserdb ?? config.get('mail_plugins', { protocol }));
}
