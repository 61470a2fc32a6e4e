/**
 * `sealadm config` = `doveconf` / `doveadm config`: `-n` prints the
 * non-default settings in doveconf's layout; with setting names it prints
 * `key = value` lines (or bare values with -h) as `doveconf KEY` does.
 * Warnings (unknown settings …) go to stderr; an error names file:line and
 * exits 89 like doveconf. `-W` (Sealmail's own) lists instead what the server
 * would warn about or refuse at start (config/support-report.ts), one line
 * each, and exits 89 when something would stop the start.
 */
import { ConfigError, dumpNonDefault, loadConfig, supportFindings } from '../../config/index.js';
import { CommandError, UsageError, type CliCommand } from '../command.js';

const EX_CONFIG_FATAL = 89;

export const configCommand: CliCommand = {
  async run(ctx) {
    let nonDefault = false;
    let showSecrets = false;
    let hideKey = false;
    let findings = false;
    let configPath = ctx.configPath;
    const names: string[] = [];
    const args = [...ctx.args];
    while (args.length) {
      const a = args.shift()!;
      if (a === '-n') nonDefault = true;
      else if (a === '-a') nonDefault = false;
      else if (a === '-P') showSecrets = true;
      else if (a === '-h') hideKey = true;
      else if (a === '-W') findings = true;
      else if (a === '-c') { configPath = args.shift() ?? ''; if (!configPath) throw new UsageError('-c needs a file'); }
      else if (a.startsWith('-')) throw new UsageError(`Unknown parameter: ${a}`);
      else names.push(a);
    }
    let config;
    try {
      // doveconf -n shows values as written: only self-references are expanded.
      config = await loadConfig(configPath, { overrides: ctx.overrides, expandValues: names.length > 0 || findings });
    } catch (e) {
      if (e instanceof ConfigError) throw new CommandError(`doveconf: Fatal: ${e.message}`, EX_CONFIG_FATAL);
      throw e;
    }
    for (const w of config.warnings) ctx.err.write(`doveconf: Warning: ${w}\n`);
    if (findings) {
      const list = supportFindings(config);
      for (const f of list) ctx.out.write(`${f.level === 'fatal' ? 'Fatal' : 'Warning'}: ${f.text}\n`);
      return list.some((f) => f.level === 'fatal') ? EX_CONFIG_FATAL : 0;
    }
    if (names.length) {
      for (const n of names) ctx.out.write(hideKey ? `${config.get(n)}\n` : `${n} = ${config.get(n)}\n`);
      return 0;
    }
    void nonDefault; // -a (all settings) prints the same non-default view for now; see dovecot-compat.md
    // as doveconf with Pigeonhole's managesieve installed: the capabilities ManageSieve announces
    // (the extensions sieve_extensions switches on that Sealmail implements; the notify methods with enotify)
    // (loaded here only: `sealadm config KEY` stays free of the Sieve code, lazy-load.test.ts)
    const { SUPPORTED_EXTENSIONS } = await import('../../sieve/compile.js');
    const { sieveCapability, notifyCapability } = await import('../../sieve/extensions.js');
    const plugin = config.plugin();
    const notify = notifyCapability(plugin, SUPPORTED_EXTENSIONS);
    ctx.out.write(dumpNonDefault(config, { showSecrets, computed: {
      ...(notify ? { managesieve_notify_capability: notify } : {}),
      managesieve_sieve_capability: sieveCapability(plugin, SUPPORTED_EXTENSIONS),
    } }));
    return 0;
  },
};
