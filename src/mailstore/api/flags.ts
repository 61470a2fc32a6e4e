/**
 * IMAP's system flags (RFC 3501 §2.3.2, without \Recent, which is a session
 * property): the flags every storage driver keeps per message. The Maildir
 * driver spells them as Dovecot's filename letters (maildir/filename.ts).
 */
export const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'] as const;
export type SystemFlag = typeof SYSTEM_FLAGS[number];
