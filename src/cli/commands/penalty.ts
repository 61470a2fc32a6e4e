/**
 * `sealadm penalty [-a <anvil socket path>] [<ip/bits>]` = doveadm penalty
 * (doveadm-penalty.c): the auth penalties the running server holds (anvil's
 * PENALTY-DUMP; Sealmail's master answers on its admin socket,
 * server/penalty-dump.ts), as doveadm's table: IP, penalty, last_penalty
 * ("%Y-%m-%d %H:%M:%S"), last_update ("%H:%M:%S"), local time, least
 * recently updated first; an ip/bits shows only the addresses in it. A
 * netmask that does not parse: "Invalid netmask '…' given", exit 64. -a is
 * accepted and, as for who, the admin socket asked instead.
 */
import { isIP } from 'node:net';
import { ipInNetwork } from '../../config/settings.js';
import { formatTimestamp } from '../../log/logger.js';
import { getopt } from '../args.js';
import { CommandError, EX_USAGE, type CliCommand } from '../command.js';
import { ask } from './who.js';

/** net_parse_range: an address, optionally /bits within its family's width. */
function validRange(m: string): boolean {
  const [addr, bits, more] = m.split('/');
  const family = isIP(addr);
  if (!family || more !== undefined) return false;
  return bits === undefined || (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

export const penaltyCommand: CliCommand = {
  async run(ctx) {
    const { rest } = getopt(ctx.args, 'a:');
    if (rest.length > 1) throw new CommandError(`Error: Extraneous arguments found: ${rest.slice(1).join(' ')}`, EX_USAGE);
    const net = rest[0];
    if (net !== undefined && !validRange(net)) throw new CommandError(`Error: Invalid netmask '${net}' given`, EX_USAGE);
    const lines = await ask(ctx, 'PENALTY');
    const p = ctx.printer('table');
    p.header('IP');
    p.header('penalty');
    p.header('last_penalty');
    p.header('last_update');
    for (const line of lines) {
      if (!line) break;
      const [ident, penalty, lastPenalty, lastUpdate] = line.split('\t');
      if (net !== undefined && !ipInNetwork(ident, net)) continue;
      p.value(ident);
      p.value(penalty);
      p.value(formatTimestamp('%Y-%m-%d %H:%M:%S', new Date(Number(lastPenalty) * 1000)));
      p.value(formatTimestamp('%H:%M:%S', new Date(Number(lastUpdate) * 1000)));
    }
    p.flush();
    return 0;
  },
};
