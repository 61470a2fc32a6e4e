/**
 * `sealadm who [-1] [<user mask>] [<ip/bits>]` and `sealadm kick [-f]
 * <user mask>|<ip/bits>` = doveadm who / kick (doveadm-who.c,
 * doveadm-kick.c). The sessions come from the master's admin socket
 * (server/admin-socket.ts; Dovecot asks anvil). who prints doveadm's table:
 * one row per user and protocol with the connection count, `(pids)` and
 * `(ips)`; `-1` one row per connection. Masks: `*`/`?` wildcards matched
 * without case, an IP or IP/bits for the remote address.
 *
 * kick ends exactly the matching sessions, each with its protocol's
 * shutdown BYE and log line. Dovecot kills whole processes (SIGTERM), so it
 * refuses without -f when a process also holds other users; a Sealmail
 * process holds many users and kicks per session, so that case never
 * arises and -f is accepted for scripts. Output and exit codes are
 * doveadm's: "kicked connections from the following users:" and the user
 * names, or "no users kicked" and exit 68.
 */
import { isIP } from 'node:net';
import { ipInNetwork } from '../../config/settings.js';
import { adminSocketPath, type AdminSession } from '../../server/admin-socket.js';
import { wildcardMask } from '../../util/wildcard.js';
import { askAdmin } from '../admin-client.js';
import { getopt } from '../args.js';
import { CommandError, EX_TEMPFAIL, EX_USAGE, type CliCommand, type CommandContext } from '../command.js';
import { adminConfig } from './master.js';

/** doveadm's DOVEADM_EX_NOTFOUND. */
const EX_NOTFOUND = 68;


interface Filter { user: ((u: string) => boolean) | null; net: string | null }

/** who_parse_args: an IP range (not a bare number) is the network mask, anything else the user mask. */
function parseMasks(masks: string[]): Filter {
  const f: Filter = { user: null, net: null };
  for (const m of masks) {
    const [addr, bits] = m.split('/');
    if (!/^[0-9]+$/.test(m) && isIP(addr) && (bits === undefined || /^[0-9]{1,3}$/.test(bits))) {
      if (f.net !== null) throw new CommandError('Error: Multiple network masks not supported', EX_USAGE);
      f.net = m;
    } else {
      if (f.user !== null) throw new CommandError('Error: Multiple username masks not supported', EX_USAGE);
      const re = wildcardMask(m.toLowerCase()); // wildcard_match_icase
      f.user = (u) => re.test(u.toLowerCase());
    }
  }
  return f;
}

const matches = (s: AdminSession, f: Filter) => (!f.user || f.user(s.user)) && (!f.net || ipInNetwork(s.ip, f.net));

/** One request to the master's admin socket; its answer's lines. */
export async function ask(ctx: CommandContext, request: string): Promise<string[]> {
  const path = adminSocketPath(await adminConfig(ctx));
  try { return await askAdmin(path, request); } catch (e) {
    throw new CommandError(`Fatal: net_connect_unix(${path}) failed: ${(e as Error).message}`, EX_TEMPFAIL);
  }
}

async function sessions(ctx: CommandContext): Promise<AdminSession[]> {
  const out: AdminSession[] = [];
  for (const line of await ask(ctx, 'LIST')) {
    if (!line) break;
    const [key, user, service, pid, ip] = line.split('\t');
    out.push({ key, user, service, pid: Number(pid), ip });
  }
  return out;
}

export const whoCommand: CliCommand = {
  async run(ctx) {
    const { opts, rest } = getopt(ctx.args, 'a:1');
    const filter = parseMasks(rest);
    const all = (await sessions(ctx)).filter((s) => matches(s, filter));
    const p = ctx.printer('table');
    if (opts.has('1')) {
      p.header({ key: 'username', expand: true });
      p.header({ key: 'service', title: 'proto' });
      p.header('pid');
      p.header('ip');
      for (const s of all) { p.value(s.user); p.value(s.service); p.value(String(s.pid)); p.value(s.ip); }
    } else {
      p.widthsFromFirstRow = true; // who_print_user flushes after each user
      p.header('username');
      p.header({ key: 'connections', title: '#', right: true });
      p.header({ key: 'service', title: 'proto' });
      p.header({ key: 'pids', title: '(pids)' });
      p.header({ key: 'ips', title: '(ips)' });
      // who_aggregate_line: one row per user and protocol
      const byUser = new Map<string, { user: string; service: string; n: number; pids: number[]; ips: string[] }>();
      for (const s of all) {
        const k = `${s.user}\t${s.service}`;
        let u = byUser.get(k);
        if (!u) { u = { user: s.user, service: s.service, n: 0, pids: [], ips: [] }; byUser.set(k, u); }
        u.n++;
        if (!u.pids.includes(s.pid)) u.pids.push(s.pid);
        if (s.ip && !u.ips.includes(s.ip)) u.ips.push(s.ip);
      }
      for (const u of byUser.values()) {
        p.value(u.user); p.value(String(u.n)); p.value(u.service); p.value(`(${u.pids.join(' ')})`); p.value(`(${u.ips.join(' ')})`);
      }
    }
    p.flush();
    return 0;
  },
};

export const kickCommand: CliCommand = {
  async run(ctx) {
    const { rest } = getopt(ctx.args, 'a:f');
    if (!rest.length) throw new CommandError('Error: user and/or ip[/bits] must be specified.', EX_USAGE);
    const filter = parseMasks(rest);
    const hit = (await sessions(ctx)).filter((s) => matches(s, filter));
    const told = hit.length ? Number((await ask(ctx, ['KICK', ...hit.map((s) => s.key)].join('\t')))[0]?.split('\t')[1] ?? 0) : 0;
    if (!hit.length || !told) { ctx.out.write('no users kicked\n'); return EX_NOTFOUND; }
    const users = [...new Set(hit.map((s) => s.user))].sort().map((u) => `${u} `).join('');
    // doveadm writes the names through its print stream and the rest with printf: on a pipe the
    // names come out first (stdio's buffer is flushed at exit), on a terminal in reading order
    const tty = ctx.out === process.stdout && process.stdout.isTTY;
    ctx.out.write(tty ? `kicked connections from the following users:\n${users}\n` : `${users}kicked connections from the following users:\n\n`);
    return 0;
  },
};
