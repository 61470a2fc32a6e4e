/**
 * The sealadm command table. Each command lives in its own file; add one
 * import and one entry per command (longest names are matched first).
 */
import type { CliCommand } from '../command.js';
import { configCommand } from './config.js';
import { pwCommand } from './pw.js';
import { authLookupCommand, authTestCommand } from './auth.js';
import { userCommand } from './user.js';
import { forceResyncCommand } from './force-resync.js';
import { migrateCheckCommand } from './migrate.js';
import { fetchCommand } from './fetch.js';
import { indexCommand } from './index-mailbox.js';
import { saveCommand } from './save.js';
import { cryptokeyExportCommand, cryptokeyGenerateCommand, cryptokeyListCommand, cryptokeyPasswordCommand, cryptokeyRecoveryCommand } from './cryptokey.js';
import { passwordChangeCommand } from './password.js';
import { quotaGetCommand, quotaRecalcCommand } from './quota.js';
import { reloadCommand, stopCommand } from './master.js';
import { kickCommand, whoCommand } from './who.js';
import { mailboxCreateCommand, mailboxDeleteCommand, mailboxListCommand, mailboxRenameCommand, mailboxStatusCommand } from './mailbox.js';

export const commands: CliCommand[] = [
  configCommand,
  pwCommand,
  authTestCommand,
  authLookupCommand,
  userCommand,
  mailboxListCommand,
  mailboxStatusCommand,
  mailboxCreateCommand,
  mailboxDeleteCommand,
  mailboxRenameCommand,
  forceResyncCommand,
  migrateCheckCommand,
  fetchCommand,
  indexCommand,
  saveCommand,
  cryptokeyGenerateCommand,
  cryptokeyListCommand,
  cryptokeyPasswordCommand,
  cryptokeyExportCommand,
  cryptokeyRecoveryCommand,
  passwordChangeCommand,
  quotaGetCommand,
  quotaRecalcCommand,
  reloadCommand,
  stopCommand,
  whoCommand,
  kickCommand,
];
