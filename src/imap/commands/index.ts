/**
 * The IMAP command table: which command runs in which state, and the
 * context a command gets (its tag, arguments, the session, and the tagged
 * reply helpers that add Dovecot's timing suffix). One module per family.
 */
import { sessionCommands } from './session-commands.js';
import { mailboxCommands } from './mailboxes.js';
import { selectCommands } from './select.js';
import { fetchCommands } from './fetch.js';
import { storeCommands } from './store.js';
import { searchCommands } from './search.js';
import { copyCommands } from './copy.js';
import { appendCommands } from './append.js';
import { idleCommands } from './idle.js';
import { sortCommands } from './sort.js';
import { threadCommands } from './thread.js';
import { quotaCommands } from './quota.js';
import { compressCommands } from './compress.js';
import { metadataCommands } from './metadata.js';
import { notifyCommands } from './notify.js';

export type { Command, CommandContext } from './types.js';
import type { Command } from './types.js';

// one family a line, so extensions are added without touching each other
export const COMMANDS: Record<string, Command> = {
  ...sessionCommands,
  ...mailboxCommands,
  ...selectCommands,
  ...fetchCommands,
  ...storeCommands,
  ...searchCommands,
  ...copyCommands,
  ...appendCommands,
  ...idleCommands,
  ...sortCommands,
  ...threadCommands,
  ...quotaCommands,
  ...compressCommands,
  ...metadataCommands,
  ...notifyCommands,
};
