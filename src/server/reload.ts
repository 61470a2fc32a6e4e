/**
 * SIGHUP (`sealadm reload`, `doveadm reload`), as Dovecot's master handles
 * it (src/master/main.c sig_settings_reload): `master: Warning: SIGHUP
 * received - reloading configuration`, the tree read again with every file
 * afresh (privileged-files.ts), the certificate and key tried; on any error
 * Dovecot's line (`Error reading configuration: …`, `Config reload failed:
 * …`) and the settings in force stay, the master never exits. A good tree
 * is handed to the mode's apply (service-processes.ts, root-master.ts).
 * One reload at a time: a SIGHUP during one is done after it.
 */
import { secureContextFor } from './tls-context.js';
import { ConfigError, loadConfig, type DovecotConfig } from '../config/index.js';
import { rereadConfigFiles } from '../config/privileged-files.js';
import type { Logger } from '../log/logger.js';
import type { TlsMaterial } from './listeners.js';

export interface ReloadHelpers {
  /** Read what only root may read and the processes need (dovecot-sql.conf.ext). */
  preload(config: DovecotConfig): void;
  tls(config: DovecotConfig): TlsMaterial | null;
}

async function rereadTree(configPath: string, log: Logger, h: ReloadHelpers): Promise<DovecotConfig | null> {
  log.warn('SIGHUP received - reloading configuration');
  let config: DovecotConfig;
  let kept: string[];
  try {
    ({ value: config, kept } = await rereadConfigFiles(async () => {
      const c = await loadConfig(configPath, { readValueFiles: true });
      h.preload(c);
      return c;
    }));
  } catch (e) {
    log.error(`Error reading configuration: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
    return null;
  }
  for (const p of kept) log.warn(`reload: ${p} is no longer readable (root was given up at start): its content from the start is kept, a restart reads it`);
  const tls = h.tls(config);
  // every certificate (the default and each local_name section's) must load, else the old ones stay
  for (const s of tls ? [tls, ...tls.named()] : []) {
    try { secureContextFor(s); } catch (e) {
      log.error(`Config reload failed: ${s.sources.join(', ')}: ${(e as Error).message}; the previous certificates stay in use`);
      return null;
    }
  }
  for (const w of config.warnings) log.warn(w);
  return config;
}

export function reloadOnSighup(configPath: string, log: Logger, h: ReloadHelpers, apply: (config: DovecotConfig) => Promise<void>): void {
  let queue = Promise.resolve();
  process.on('SIGHUP', () => {
    queue = queue.then(async () => {
      const config = await rereadTree(configPath, log, h);
      if (!config) return;
      try { await apply(config); } catch (e) { log.error(`Config reload failed: ${(e as Error).message}`); }
    });
  });
}
