/**
 * The sealadm command table: each command's words and usage line, and how to
 * load its implementation. A command's file is imported only when that
 * command runs (doveadm starts in ~0.05 s; loading every command's mail
 * store, sieve, crypt and SQL client modules up front cost sealadm most of
 * a second before any work). Add one row per command; the longest matching
 * words win.
 */
import type { CommandEntry } from '../command.js';

export const commands: CommandEntry[] = [
  { name: 'config', usage: '[-a] [-n] [-P] [-h] [-W] [-c <config>] [<setting> ...]', load: async () => (await import('./config.js')).configCommand },
  { name: 'pw', usage: '[-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]', load: async () => (await import('./pw.js')).pwCommand },
  { name: 'auth test', usage: '[-a <auth socket path>] [-x <auth info>] [-M <master user>] <user> [<password>]', load: async () => (await import('./auth.js')).authTestCommand },
  { name: 'auth login', usage: '[-a <auth-login socket path>] [-m <auth-master socket path>] [-x <auth info>] [-M <master user>] <user> [<password>]', load: async () => (await import('./auth.js')).authLoginCommand },
  { name: 'auth lookup', usage: '[-a <auth socket path>] [-x <auth info>] [-f field] <user> [<user> ...]', load: async () => (await import('./auth.js')).authLookupCommand },
  { name: 'user', usage: '[-a <userdb socket path>] [-x <auth info>] [-f field] [-m] [-u] <user mask> [...]', load: async () => (await import('./user.js')).userCommand },
  { name: 'mailbox list', usage: '[-s] -u <user> [<mailbox mask> [...]]', load: async () => (await import('./mailbox.js')).mailboxListCommand },
  { name: 'mailbox status', usage: '[-t] -u <user> <fields> <mailbox mask> [...]', load: async () => (await import('./mailbox.js')).mailboxStatusCommand },
  { name: 'mailbox create', usage: '-u <user> <mailbox> [...]', load: async () => (await import('./mailbox.js')).mailboxCreateCommand },
  { name: 'mailbox delete', usage: '-u <user> <mailbox> [...]', load: async () => (await import('./mailbox.js')).mailboxDeleteCommand },
  { name: 'mailbox rename', usage: '-u <user> <old name> <new name>', load: async () => (await import('./mailbox.js')).mailboxRenameCommand },
  { name: 'force-resync', usage: '[-f] -u <user> <mailbox mask>', load: async () => (await import('./force-resync.js')).forceResyncCommand },
  { name: 'migrate check', usage: '-u <user> | -A', load: async () => (await import('./migrate.js')).migrateCheckCommand },
  { name: 'fetch', usage: '[-u <user>|-A] [-S <socket_path>] <fields> <search query>', load: async () => (await import('./fetch.js')).fetchCommand },
  { name: 'search', usage: '[-u <user>|-A] [-S <socket_path>] <search query>', load: async () => (await import('./messages.js')).searchCommand },
  { name: 'expunge', usage: '[-u <user>|-A] [-S <socket_path>] [-d] <search query>', load: async () => (await import('./messages.js')).expungeCommand },
  { name: 'flags add', usage: '[-u <user>|-A] [-S <socket_path>] <flags> <search query>', load: async () => (await import('./messages.js')).flagsAddCommand },
  { name: 'flags remove', usage: '[-u <user>|-A] [-S <socket_path>] <flags> <search query>', load: async () => (await import('./messages.js')).flagsRemoveCommand },
  { name: 'flags replace', usage: '[-u <user>|-A] [-S <socket_path>] <flags> <search query>', load: async () => (await import('./messages.js')).flagsReplaceCommand },
  { name: 'copy', usage: '[-u <user>|-A] [-S <socket_path>] <destination> [user <source user>] <search query>', load: async () => (await import('./messages.js')).copyMessagesCommand },
  { name: 'move', usage: '[-u <user>|-A] [-S <socket_path>] <destination> [user <source user>] <search query>', load: async () => (await import('./messages.js')).moveMessagesCommand },
  { name: 'mailbox subscribe', usage: '[-u <user>|-A] [-S <socket_path>] <mailbox> [...]', load: async () => (await import('./messages.js')).mailboxSubscribeCommand },
  { name: 'mailbox unsubscribe', usage: '[-u <user>|-A] [-S <socket_path>] <mailbox> [...]', load: async () => (await import('./messages.js')).mailboxUnsubscribeCommand },
  { name: 'deduplicate', usage: '[-u <user>|-A] [-S <socket_path>] [-m] <search query>', load: async () => (await import('./messages.js')).deduplicateCommand },
  { name: 'purge', usage: '[-u <user>|-A] [-S <socket_path>]', load: async () => (await import('./messages.js')).purgeCommand },
  { name: 'index', usage: '[-u <user>|-A] [-q] [-n <max recent>] <mailbox mask>', load: async () => (await import('./index-mailbox.js')).indexCommand },
  { name: 'save', usage: '[-u <user>] [-m <mailbox>]', load: async () => (await import('./save.js')).saveCommand },
  { name: 'mailbox cryptokey generate', usage: '[-u <user>|-A] [-U] [-R] [-f] <mailbox mask> [...]', load: async () => (await import('./cryptokey.js')).cryptokeyGenerateCommand },
  { name: 'mailbox cryptokey list', usage: '[-u <user>|-A] [-U] <mailbox mask> [...]', load: async () => (await import('./cryptokey.js')).cryptokeyListCommand },
  { name: 'mailbox cryptokey password', usage: '[-u <user>|-A] [-N | -n <new password>] [-O | -o <old password>] [-C]', load: async () => (await import('./cryptokey.js')).cryptokeyPasswordCommand },
  { name: 'mailbox cryptokey export', usage: '[-u <user>|-A] [-U] <mailbox mask> [...]', load: async () => (await import('./cryptokey.js')).cryptokeyExportCommand },
  { name: 'mailbox cryptokey recovery', usage: '-u <user>', load: async () => (await import('./cryptokey.js')).cryptokeyRecoveryCommand },
  { name: 'app-password add', usage: '-u <user> [-n <name>]', load: async () => (await import('./app-password.js')).appPasswordAddCommand },
  { name: 'app-password list', usage: '-u <user>', load: async () => (await import('./app-password.js')).appPasswordListCommand },
  { name: 'app-password revoke', usage: '-u <user> <id>', load: async () => (await import('./app-password.js')).appPasswordRevokeCommand },
  { name: 'password change', usage: '-u <user> [--recovery]', load: async () => (await import('./password.js')).passwordChangeCommand },
  { name: 'password rekey', usage: '-u <user> | <user> [<domain>]', load: async () => (await import('./password.js')).passwordRekeyCommand },
  { name: 'quota get', usage: '[-u <user>|-A]', load: async () => (await import('./quota.js')).quotaGetCommand },
  { name: 'quota recalc', usage: '[-u <user>|-A]', load: async () => (await import('./quota.js')).quotaRecalcCommand },
  { name: 'sieve list', usage: '[-u <user>|-A] [-S <socket_path>]', load: async () => (await import('./sieve.js')).sieveListCommand },
  { name: 'sieve get', usage: '[-u <user>|-A] [-S <socket_path>] <scriptname>', load: async () => (await import('./sieve.js')).sieveGetCommand },
  { name: 'sieve put', usage: '[-u <user>|-A] [-S <socket_path>] [-a] <scriptname>', load: async () => (await import('./sieve.js')).sievePutCommand },
  { name: 'sieve activate', usage: '[-u <user>|-A] [-S <socket_path>] <scriptname>', load: async () => (await import('./sieve.js')).sieveActivateCommand },
  { name: 'sieve deactivate', usage: '[-u <user>|-A] [-S <socket_path>]', load: async () => (await import('./sieve.js')).sieveDeactivateCommand },
  { name: 'sieve delete', usage: '[-u <user>|-A] [-S <socket_path>] [-a] <scriptname> [...]', load: async () => (await import('./sieve.js')).sieveDeleteCommand },
  { name: 'sieve rename', usage: '[-u <user>|-A] [-S <socket_path>] <oldname> <newname>', load: async () => (await import('./sieve.js')).sieveRenameCommand },
  { name: 'reload', usage: '', load: async () => (await import('./master.js')).reloadCommand },
  { name: 'log reopen', usage: '', load: async () => (await import('./master.js')).logReopenCommand },
  { name: 'stop', usage: '', load: async () => (await import('./master.js')).stopCommand },
  { name: 'who', usage: '[-a <anvil socket path>] [-1] [<user mask>] [<ip/bits>]', load: async () => (await import('./who.js')).whoCommand },
  { name: 'kick', usage: '[-a <anvil socket path>] [-f] <user mask>[|]<ip/bits>', load: async () => (await import('./who.js')).kickCommand },
];
