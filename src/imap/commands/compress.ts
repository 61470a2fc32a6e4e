/**
 * COMPRESS (RFC 4978) as Dovecot 2.3's imap_zlib plugin answers it: only
 * DEFLATE, `NO [COMPRESSIONACTIVE]` once active, Dovecot's texts for a
 * missing plugin, bad arguments and unknown mechanisms. The compression
 * itself is the session's (it owns the socket).
 */
import { astring } from './args.js';
import { AUTHED, type Command } from './types.js';

export const compressCommands: Record<string, Command> = {
  COMPRESS: {
    states: AUTHED,
    async run(ctx) {
      const s = ctx.session;
      if (!s.mailPlugins.includes('imap_zlib')) { await ctx.bad('Error in IMAP command COMPRESS: Unknown command.'); return; }
      const mech = ctx.args.length === 1 && ctx.args[0].type === 'atom' ? astring(ctx.args[0])!.toUpperCase() : null;
      if (mech === null) { await ctx.bad('Error in IMAP command COMPRESS: Invalid arguments.'); return; }
      if (s.compressed) { await ctx.no('COMPRESSION=DEFLATE already enabled.', { name: 'COMPRESSIONACTIVE' }); return; }
      if (mech !== 'DEFLATE') { await ctx.no('Unknown compression mechanism.'); return; }
      await ctx.ok('Begin compression');
      // Dovecot's imap_zlib_compress_level (plugin setting), zlib's default 6
      const level = Number(s.config.plugin({ protocol: 'imap' }).imap_zlib_compress_level ?? 6);
      s.startCompression(Number.isInteger(level) && level >= 0 && level <= 9 ? level : 6);
    },
  },
};
