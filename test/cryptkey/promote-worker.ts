/**
 * Child process for the password-change tests: what an IMAP login does after
 * the passdb accepted the password — unlock the user's keys with promotion
 * of a staged key copy. Runs as the mail uid (spawned with uid/gid), after
 * the userdb lookup the parent did (as the auth process would).
 * argv: config path, user, password, home, userdb fields as JSON.
 */
import { loadConfig } from '../../src/config/index.js';
import { MailStore } from '../../src/mailstore/store.js';
import { unlockUserCrypt } from '../../src/crypt/user-crypt.js';

const [conf, user, password, home, fieldsJson] = process.argv.slice(2);
const config = await loadConfig(conf);
const r = { fields: JSON.parse(fieldsJson) as [string, string][] };
const store = new MailStore({ mailLocation: 'maildir:~/Maildir', home });
await unlockUserCrypt(config, {
  username: user, mailRoot: store.loc.root, home, fields: r.fields, protocol: 'imap',
  async mailboxGuid(name) { const f = await store.open(name); await f.sync(); return f.guid; },
}, password, { promotePending: true });
process.stdout.write('unlocked\n');
