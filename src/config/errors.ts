/**
 * Configuration errors and warnings worded as Dovecot 2.3 words them
 * ("Error in configuration file FILE line N: TEXT"), so an admin sees the same
 * message whichever server read the tree.
 */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly line: number, readonly reason: string) {
    super(line > 0 ? `Error in configuration file ${file} line ${line}: ${reason}` : `Error in configuration file ${file}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** Where a setting or statement came from. */
export interface Origin { file: string; line: number }
