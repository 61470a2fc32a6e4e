/**
 * The seam between storage and encryption at rest. The mail store calls a
 * MessageCodec on every message body it writes or reads and an IndexCipher on
 * every cache/index record it persists; for users without mail-crypt both are
 * the identity. Implementations live in src/crypt (Dovecot mail-crypt format);
 * src/mailstore only depends on these interfaces.
 */

export interface MessageCodec {
  /** True when stored bytes (at least the first 32) are in an encrypted container. */
  isEncrypted(head: Buffer): boolean;
  /**
   * Plaintext in, stored bytes out, for a message saved into `mailbox`
   * (IMAP name, e.g. "INBOX", "Archive/Projects"). Needs public keys only,
   * so delivery works while the user is offline.
   */
  encrypt(mailbox: string, plaintext: AsyncIterable<Buffer>): AsyncIterable<Buffer>;
  /** Stored bytes in, plaintext out. Plain (unencrypted) input passes through. */
  decrypt(mailbox: string, stored: AsyncIterable<Buffer>): AsyncIterable<Buffer>;
  /**
   * Optional: start the expensive part of reading a message whose first
   * bytes are `head` (for mail-crypt: unwrapping its key on a worker), so a
   * FETCH over many messages overlaps key work with streaming. Never throws.
   */
  warm?(mailbox: string, head: Buffer): void;
  /**
   * True when this codec cannot decrypt (the user's key did not open): the
   * store never shares a folder handle between such a session and one that
   * can read, in either direction.
   */
  locked?: boolean;
}

/** Seals index/cache records so no message data is ever at rest in plaintext. */
export interface IndexCipher {
  seal(plain: Buffer): Buffer;
  open(sealed: Buffer): Buffer;
}

async function* passThrough(src: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  yield* src;
}

export const identityCodec: MessageCodec = {
  isEncrypted: () => false,
  encrypt: (_mailbox, plaintext) => passThrough(plaintext),
  decrypt: (_mailbox, stored) => passThrough(stored),
};

export const identityCipher: IndexCipher = {
  seal: (b) => b,
  open: (b) => b,
};
