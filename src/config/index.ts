/**
 * Public face of src/config: load a Dovecot 2.3 configuration tree into a
 * typed view, parse `.conf.ext` files, and print `doveconf -n`.
 */
import { parseConfigFile, type ParseOptions } from './parser.js';
import { DovecotConfig } from './settings.js';
import { ConfigError } from './errors.js';
import { isKnownKey, settingType } from './known-settings.js';
import { Node } from './tree.js';

export { ConfigError } from './errors.js';
export { DovecotConfig, type FilterContext, type ServiceConfig, type NamespaceConfig, type InetListener, type UnixListener } from './settings.js';
export { parseExtFile, parseExtText, checkKnownKeys, type ExtFile } from './ext-parser.js';
export { dumpNonDefault } from './dump.js';
export { supportFindings, type Finding } from './support-report.js';

export interface LoadOptions {
  /** `-o key=value` overrides (doveadm/doveconf), applied after the files; `plugin/x` and `service/NAME/x` paths work. */
  overrides?: [string, string][];
  /** Read `<file` values (a server start): a missing file is then an error, as in Dovecot. */
  readValueFiles?: boolean;
  /** Expand every `$setting` (runtime) rather than only self-references (doveconf -n). Default: true. */
  expandValues?: boolean;
  env?: NodeJS.ProcessEnv;
}

function applyOverride(config: DovecotConfig, key: string, value: string): void {
  const parts = key.split('/');
  const origin = { file: '-o', line: 0 };
  let node: Node = config.filters[0].root;
  const types: string[] = [];
  while (parts.length > 1) {
    const type = parts.shift()!;
    if (type === 'plugin') {
      node = node.section('plugin', '', '', origin);
      types.push('plugin');
      continue;
    }
    const name = parts.shift() ?? '';
    node = node.section(type, name, name, origin);
    types.push(type);
  }
  const k = parts[0];
  if (!isKnownKey(types, k) && settingType(types, k) === 'string' && types.length === 0) {
    config.warnings.push(`-o ${key}: Unknown setting: ${k} (ignored)`);
  }
  node.settings.set(k, { value, origin });
}

export async function loadConfig(path: string, opts: LoadOptions = {}): Promise<DovecotConfig> {
  const parseOpts: ParseOptions = { readValueFiles: opts.readValueFiles ?? false, expandValues: opts.expandValues ?? true, env: opts.env };
  const config = new DovecotConfig(parseConfigFile(path, parseOpts));
  for (const [k, v] of opts.overrides ?? []) applyOverride(config, k, v);
  return config;
}

export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof ConfigError;
}
