/**
 * The pop3 process's half of a login (Dovecot's pop3 main.c
 * client_create_from_input + client_init_session): the user opened by the
 * mail-user service (src/mailuser, protocol pop3: the `protocol pop3 { }`
 * settings, mail-crypt unlocked with the login password, first_valid_uid /
 * last_valid_uid), then the maildrop. "+OK Logged in." is sent through
 * `loggedIn` before the INBOX is read, or only after the session lock with
 * pop3_lock_session (RFC 1939 wants the lock before the positive reply).
 */
import type { Fields } from '../auth/databases.js';
import type { DovecotConfig } from '../config/settings.js';
import { CryptError } from '../crypt/keys.js';
import { MailAccessRefused, openMailUser } from '../mailuser/open-mail-user.js';
import { Maildrop, MaildropError, pop3Settings, pop3SettingsError } from './maildrop.js';

const INTERNAL = 'Internal error occurred. Refer to server log for more information.';

export type Pop3OpenResult = { drop: Maildrop } | { drop?: undefined; reply: string; error: string };

export async function openPop3User(config: DovecotConfig, user: string, fields: Fields, password: string, loggedIn: () => void): Promise<Pop3OpenResult> {
  const settings = pop3Settings(config);
  const bad = pop3SettingsError(settings);
  if (bad) return { reply: `-ERR [SYS/TEMP] ${INTERNAL}`, error: bad };
  let sent = false;
  const ok = () => { if (!sent) { sent = true; loggedIn(); } };
  // Dovecot's lookup / namespace failure comes before any +OK
  let mu;
  try {
    mu = await openMailUser(config, { user, fields, protocol: 'pop3', crypt: { kind: 'login', password } });
  } catch (e) {
    if (e instanceof MailAccessRefused) return { reply: `-ERR [SYS/TEMP] ${INTERNAL}`, error: e.message };
    if (e instanceof CryptError) return { reply: `-ERR [SYS/TEMP] ${INTERNAL}`, error: `mail-crypt: ${e.message}` };
    throw e;
  }
  if (!settings.lockSession) ok();
  try {
    const drop = await Maildrop.open(mu.store, settings);
    ok();
    return { drop };
  } catch (e) {
    if (e instanceof MaildropError) return { reply: e.reply, error: e.message };
    return { reply: `-ERR [SYS/TEMP] ${INTERNAL}`, error: `Couldn't init INBOX: ${(e as Error).message}` };
  }
}
