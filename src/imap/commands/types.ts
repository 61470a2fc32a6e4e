/**
 * What every IMAP command module shares: the context a command runs with
 * and the session states it is valid in (kept apart from the command table
 * so command modules and the table don't import each other).
 */
import type { ImapArg } from '../wire/parser.js';
import type { ResponseCode } from '../wire/encoder.js';
import type { Session, SessionState } from '../session.js';

export interface CommandContext {
  tag: string;
  name: string;
  args: ImapArg[];
  session: Session;
  ok(text: string, code?: ResponseCode): Promise<void>;
  no(text: string, code?: ResponseCode): Promise<void>;
  bad(text: string): Promise<void>;
}

export interface Command {
  states: SessionState[];
  /** A plugin's command (imap_quota): unknown to the client unless this says it is loaded. */
  enabled?(session: Session): boolean;
  run(ctx: CommandContext): Promise<void>;
}

export const ANY: SessionState[] = ['not-authenticated', 'authenticated', 'selected'];
export const AUTHED: SessionState[] = ['authenticated', 'selected'];
export const SELECTED: SessionState[] = ['selected'];
export const NOT_AUTHED: SessionState[] = ['not-authenticated'];

