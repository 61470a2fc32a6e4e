/**
 * Dovecot's timing suffix on tagged replies (src/imap/imap-client.c,
 * client_cmd_append_timing_stats): " (<cmd> + <ioloop> secs)." and, when the
 * reply left later than the command finished (a loaded machine), a third part:
 * " (0.001 + 0.000 + 0.004 secs).". Every normaliser matches both forms.
 */
const DOVECOT_TIMING = / \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)/g;

/** Replace every timing suffix (with its leading space) by `by`. */
export const foldTiming = (text: string, by = ''): string => text.replace(DOVECOT_TIMING, by);
