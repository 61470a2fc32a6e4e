/**
 * `sealadm reload`, `stop` and `log reopen` = `doveadm reload` / `stop` / `log reopen`
 * (doveadm-master.c): the master's pid from base_dir/master.pid, SIGHUP or
 * SIGTERM (SIGUSR1 for log reopen) to it; stop then waits up to three seconds for it to go. No live
 * master: "Fatal: Dovecot is not running (read from …)", exit 75, as
 * doveadm's i_fatal.
 */
import { ConfigError, loadConfig, type DovecotConfig } from '../../config/index.js';
import { masterPidPath, readPidFile } from '../../server/master-pid.js';
import { CommandError, EX_TEMPFAIL, UsageError, type CliCommand, type CommandContext } from '../command.js';

/** How long `stop` waits for the master to exit (doveadm: 30 × 100 ms). */
const STOP_WAIT_TRIES = 30;
const STOP_WAIT_MS = 100;

const fatal = (text: string) => new CommandError(`Fatal: ${text}`, EX_TEMPFAIL);

/** The tree, as doveadm reads it before doing anything: a broken one is doveconf's fatal error, exit 89. */
export async function adminConfig(ctx: CommandContext): Promise<DovecotConfig> {
  try { return await loadConfig(ctx.configPath, { overrides: ctx.overrides }); } catch (e) {
    if (e instanceof ConfigError) throw new CommandError(`doveconf: Fatal: ${e.message}`, 89);
    throw e;
  }
}

async function sendSignal(ctx: CommandContext, sig: 'SIGHUP' | 'SIGTERM' | 'SIGUSR1'): Promise<number> {
  if (ctx.args.length) throw new UsageError(`Unknown parameter: ${ctx.args[0]}`);
  const path = masterPidPath(await adminConfig(ctx));
  let r: ReturnType<typeof readPidFile>;
  try { r = readPidFile(path); } catch (e) { throw fatal((e as Error).message); }
  if (r.empty) ctx.err.write(`Error: Empty PID file in ${path}\n`);
  if (r.pid === null) throw fatal(`Dovecot is not running (read from ${path})`);
  const pid = r.pid;
  try { process.kill(pid, sig); } catch (e) { throw fatal(`kill(${pid}, ${{ SIGHUP: 1, SIGUSR1: 10, SIGTERM: 15 }[sig]}) failed: ${(e as Error).message}`); }
  if (sig === 'SIGTERM') {
    for (let i = 0; i < STOP_WAIT_TRIES; i++) {
      try { process.kill(pid, 0); } catch { break; }
      await new Promise((res) => setTimeout(res, STOP_WAIT_MS));
    }
  }
  return 0;
}

export const reloadCommand: CliCommand = { run: (ctx) => sendSignal(ctx, 'SIGHUP') };
export const stopCommand: CliCommand = { run: (ctx) => sendSignal(ctx, 'SIGTERM') };
/** doveadm log reopen: SIGUSR1 to the master, which reopens its log files and relays it to every process (logrotate's postrotate). */
export const logReopenCommand: CliCommand = { run: (ctx) => sendSignal(ctx, 'SIGUSR1') };
