/**
 * What Dovecot 2.3.19 knows: every global setting and service default, taken
 * from `doveconf -d` (defaults-data.ts, generated), the keys of the list
 * sections doveconf -d cannot show (namespace, mailbox, passdb, userdb), the
 * value types inferred from the defaults, and Sealmail's support status of
 * each setting (dovecot-compat.md is checked against this table by a test).
 */
import { DOVECOT_DEFAULTS_TEXT } from './defaults-data.js';
import { LineLexer } from './lexer.js';
import { Node } from './tree.js';

/** Parse doveconf -d output: plain statements, no includes, no expansion. */
function parseDefaults(text: string): Node {
  const root = new Node();
  const stack: Node[] = [root];
  const lexer = new LineLexer();
  for (const line of text.split('\n')) {
    const st = lexer.feed(line, () => {});
    const top = stack[stack.length - 1];
    if (st.kind === 'keyvalue' || st.kind === 'keyvariable') top.settings.set(st.key, { value: st.value, origin: { file: '', line: 0 } });
    else if (st.kind === 'section') stack.push(top.section(st.type, st.name, st.name, { file: '', line: 0 }));
    else if (st.kind === 'end') stack.pop();
  }
  return root;
}

/**
 * Settings Dovecot accepts but `doveconf -d` does not list (SET_FLAG_HIDDEN in
 * lib-storage); defaults checked with doveconf -n (setting them prints nothing).
 */
const HIDDEN_DEFAULTS_TEXT = `
mail_cache_min_mail_count = 0
mail_cache_unaccessed_field_drop = 30 days
mail_cache_record_max_size = 64 k
mail_cache_max_size = 1 G
mail_cache_purge_min_size = 32 k
mail_cache_purge_delete_percentage = 20
mail_cache_purge_continued_percentage = 200
mail_cache_purge_header_continue_count = 4
mail_index_rewrite_min_log_bytes = 8 k
mail_index_rewrite_max_log_bytes = 128 k
mail_index_log_rotate_min_size = 32 k
mail_index_log_rotate_max_size = 1 M
mail_index_log_rotate_min_age = 5 mins
mail_index_log2_max_age = 2 days
`;

/**
 * Pigeonhole's managesieve settings (managesieve-settings.c of 0.5.19, as
 * `doveconf -d` lists them with the plugin installed). The two capability
 * lines are computed by the plugin when unset, so their default here is empty.
 */
const PIGEONHOLE_DEFAULTS_TEXT = `
managesieve_client_workarounds =
managesieve_implementation_string = Dovecot (Debian) Pigeonhole
managesieve_logout_format = bytes=%i/%o
managesieve_max_compile_errors = 5
managesieve_max_line_length = 64 k
managesieve_notify_capability =
managesieve_sieve_capability =
`;

export const DEFAULTS: Node = parseDefaults(DOVECOT_DEFAULTS_TEXT + HIDDEN_DEFAULTS_TEXT + PIGEONHOLE_DEFAULTS_TEXT);

export const SECTION_DEFAULTS: Record<string, Record<string, string>> = {
  namespace: {
    type: 'private', separator: '', prefix: '', location: '', inbox: 'no', hidden: 'no', list: 'yes',
    subscriptions: 'yes', ignore_on_failure: 'no', disabled: 'no', alias_for: '', order: '0',
  },
  mailbox: { auto: 'no', special_use: '', driver: '', comment: '', autoexpunge: '0', autoexpunge_max_mails: '0' },
  passdb: {
    name: '', driver: '', args: '', default_fields: '', override_fields: '', mechanisms: '', username_filter: '',
    skip: 'never', result_success: 'return-ok', result_failure: 'continue', result_internalfail: 'continue',
    deny: 'no', pass: 'no', master: 'no', auth_verbose: 'default',
  },
  userdb: {
    name: '', driver: '', args: '', default_fields: '', override_fields: '',
    skip: 'never', result_success: 'return-ok', result_failure: 'continue', result_internalfail: 'continue',
    auth_verbose: 'default',
  },
  inet_listener: { address: '', haproxy: 'no', port: '0', reuse_port: 'no', ssl: 'no' },
  unix_listener: { group: '', mode: '0600', user: '' },
  fifo_listener: { group: '', mode: '0600', user: '' },
};

/** Service keys: the union over every built-in service's defaults. */
export const SERVICE_DEFAULTS: Record<string, string> = (() => {
  const keys: Record<string, string> = {};
  for (const s of DEFAULTS.sectionsOf('service')) for (const [k, e] of s.settings) keys[k] ??= e.value;
  return { ...keys, chroot: '', client_limit: '0', drop_priv_before_exec: 'no', executable: '', extra_groups: '', group: '', idle_kill: '0', privileged_group: '', process_limit: '0', process_min_avail: '0', protocol: '', service_count: '0', type: '', user: '', vsz_limit: '18446744073709551615 B' };
})();

/**
 * Service defaults of Pigeonhole's services, which `doveconf -d` without the
 * plugin does not list (managesieve-login/managesieve-settings.c of 0.5.19).
 */
export const PLUGIN_SERVICE_DEFAULTS: Record<string, Record<string, string>> = {
  'managesieve-login': { client_limit: '0', process_limit: '0', service_count: '1', type: 'login', protocol: 'sieve' },
  managesieve: { client_limit: '1', process_limit: '0', service_count: '1', protocol: 'sieve' },
};

/** Sections whose keys are free-form (any key accepted, as Dovecot does). */
export const FREE_FORM_SECTIONS = new Set(['plugin', 'dict', 'metric', 'event_exporter', 'auth_policy_request_attributes', 'shared']);

/** Which sections may appear inside which (root = ""). */
export const SECTION_PARENTS: Record<string, string[]> = {
  service: [''], namespace: [''], passdb: [''], userdb: [''], plugin: [''], dict: [''], metric: [''], event_exporter: [''],
  mailbox: ['namespace'], inet_listener: ['service'], unix_listener: ['service'], fifo_listener: ['service'],
};

export const FILTER_TYPES = new Set(['protocol', 'local', 'remote', 'local_name']);

/** Default of a key at a section path (types from root to the section), or undefined if unknown. */
export function defaultFor(sectionTypes: string[], key: string): string | undefined {
  const t = sectionTypes[sectionTypes.length - 1];
  if (t === undefined) return DEFAULTS.get(key);
  if (t === 'service') return SERVICE_DEFAULTS[key];
  return SECTION_DEFAULTS[t]?.[key];
}

export function isKnownKey(sectionTypes: string[], key: string): boolean {
  const t = sectionTypes[sectionTypes.length - 1];
  if (t !== undefined && FREE_FORM_SECTIONS.has(t)) return true;
  return defaultFor(sectionTypes, key) !== undefined;
}

export type SettingType = 'bool' | 'time' | 'size' | 'uint' | 'octal' | 'enum' | 'string';

export const ENUMS: Record<string, string[]> = {
  ssl: ['no', 'yes', 'required'],
  auto: ['no', 'create', 'subscribe'],
  type: [],
  skip: ['never', 'authenticated', 'unauthenticated', 'found', 'notfound'],
  result_success: ['return-ok', 'return-fail', 'return', 'continue', 'continue-ok', 'continue-fail'],
  result_failure: ['return-ok', 'return-fail', 'return', 'continue', 'continue-ok', 'continue-fail'],
  result_internalfail: ['return-ok', 'return-fail', 'return', 'continue', 'continue-ok', 'continue-fail'],
  mail_fsync: ['optimized', 'always', 'never'],
  lock_method: ['fcntl', 'flock', 'dotlock'],
  list: ['yes', 'no', 'children'],
};

/** Types the defaults cannot show (a default of 0 looks like a number). */
const TYPE_OVERRIDES: Record<string, SettingType> = {
  imap_hibernate_timeout: 'time', login_proxy_max_disconnect_delay: 'time', mail_max_lock_timeout: 'time',
  mdbox_rotate_interval: 'time', idle_kill: 'time', autoexpunge: 'time',
  // Dovecot's auth checks it (no, yes, plain, sha1, with :N), doveconf takes any string
  auth_verbose_passwords: 'string',
  auth_cache_size: 'size', imapc_max_line_length: 'size', mbox_min_index_size: 'size', submission_max_mail_size: 'size',
};

export function settingType(sectionTypes: string[], key: string): SettingType {
  const t = sectionTypes[sectionTypes.length - 1];
  if (TYPE_OVERRIDES[key] && !(t !== undefined && FREE_FORM_SECTIONS.has(t))) return TYPE_OVERRIDES[key];
  if (t !== undefined && FREE_FORM_SECTIONS.has(t)) return 'string';
  if (key === 'mode' && (t === 'unix_listener' || t === 'fifo_listener')) return 'octal';
  if (key === 'ssl' && t === 'inet_listener') return 'bool';
  if (key === 'type' && t === 'namespace') return 'enum';
  if (ENUMS[key] && key !== 'type') return 'enum';
  const d = defaultFor(sectionTypes, key);
  if (d === undefined) return 'string';
  if (d === 'yes' || d === 'no') return 'bool';
  if (/^\d+ (secs|mins|hours|days|weeks)$/.test(d)) return 'time';
  if (/^\d+ [BkMGT]$/.test(d)) return 'size';
  if (/^\d+$/.test(d) && !['port', 'first_valid_uid', 'last_valid_uid', 'first_valid_gid', 'last_valid_gid'].includes(key)) return 'uint';
  return 'string';
}

export const NAMESPACE_TYPES = ['private', 'shared', 'public'];

/** Keys whose value doveconf -n hides (`# hidden, use -P to show it`). */
export function isSecretKey(key: string): boolean {
  return key.endsWith('_key') || key === 'ssl_dh' || key.includes('password');
}

/** Auth settings: refused inside local/remote filters, as Dovecot does. */
export function isAuthSetting(key: string): boolean {
  return key.startsWith('auth_') || key === 'disable_plaintext_auth';
}

/**
 * Global settings Sealmail reads and acts on today. Every other known setting
 * is accepted with Dovecot's syntax and validation but has no effect yet: the
 * server warns once at start-up for each one the configuration sets, and
 * dovecot-compat.md lists them (generated from this table).
 */
export const SEALMAIL_HONOURS = new Set([
  'protocols', 'listen', 'log_path', 'info_log_path', 'debug_log_path', 'log_timestamp', 'auth_debug',
  'mail_debug', 'mail_uid', 'mail_gid', 'ssl', 'ssl_cert', 'ssl_key', 'ssl_key_password', 'ssl_min_protocol',
  // TLS per name and cipher policy (src/server/tls-settings.ts)
  'ssl_alt_cert', 'ssl_alt_key', 'ssl_cipher_list', 'ssl_cipher_suites', 'ssl_curve_list', 'ssl_dh', 'ssl_prefer_server_ciphers',
  // client certificates (tls-settings.ts, util/tls-client-cert.ts, auth/engine.ts); auth_ssl_username_from_cert is not done (it warns)
  'ssl_ca', 'ssl_verify_client_cert', 'ssl_require_crl', 'auth_ssl_require_client_cert',
  // unix sockets (service listeners, auth-userdb) and quota warning commands are relative to it; scripts run in it
  'base_dir',
  // authentication (src/auth)
  'auth_cache_negative_ttl', 'auth_cache_size', 'auth_cache_ttl', 'auth_default_realm', 'auth_failure_delay',
  'auth_username_chars', 'auth_username_format', 'disable_plaintext_auth', 'auth_mechanisms',
  'auth_master_user_separator',
  // mail store and mail-crypt (src/mailstore, src/crypt)
  'mail_location', 'mail_home', 'mail_plugins', 'mail_attribute_dict',
  'first_valid_uid', 'last_valid_uid', 'first_valid_gid', 'last_valid_gid', 'mail_temp_scan_interval',
  // IMAP (src/imap)
  'login_greeting', 'imap_capability', 'imap_max_line_length', 'imap_idle_notify_interval',
  'imap_metadata', 'mail_server_comment', 'mail_server_admin',
  // connection limits (config/connection-limits.ts): per user+IP, and the fall-backs of every
  // service's client_limit / process_limit (service sections are not in this table: dovecot-compat.md says which count)
  'mail_max_userip_connections', 'default_client_limit', 'default_process_limit',
  // quota (src/quota)
  'lmtp_rcpt_check_quota', 'quota_full_tempfail',
  // LMTP (src/lmtp)
  'hostname', 'recipient_delimiter', 'lmtp_save_to_detail_mailbox', 'lda_mailbox_autocreate',
  'sendmail_path', 'submission_host', 'submission_timeout',
  // Sieve enotify's mailto notifications (src/sieve/deliver.ts): their sender when no :from is given
  'postmaster_address',
  // LMTP's message spool (src/lmtp/data-spool.ts) and its per-user RCPT limit
  'mail_temp_dir', 'lmtp_user_concurrency_limit',
  // the trusted edge (src/server/haproxy.ts, imap/commands/prelogin.ts)
  'haproxy_trusted_networks', 'haproxy_timeout', 'login_trusted_networks',
  // POP3 (src/pop3); pop3_save_uidl and pop3_client_workarounds are not done (they warn)
  'pop3_uidl_format', 'pop3_reuse_xuidl', 'pop3_deleted_flag', 'pop3_delete_type', 'pop3_no_flag_updates',
  'pop3_fast_size_lookups', 'pop3_lock_session', 'pop3_logout_format', 'pop3_uidl_duplicates', 'pop3_enable_last',
  // ManageSieve (src/managesieve)
  'managesieve_implementation_string', 'managesieve_sieve_capability', 'managesieve_max_compile_errors', 'managesieve_max_line_length',
  // log lines (config/login-log.ts, imap/logout-format.ts, auth/engine.ts, lmtp/deliver-log.ts, log/logger.ts)
  'login_log_format_elements', 'login_log_format', 'imap_logout_format', 'auth_verbose', 'auth_verbose_passwords',
  'deliver_log_format', 'mail_log_prefix',
  // the users of the root master mode's login and auth/LMTP processes (src/server/root-master.ts)
  'default_login_user', 'default_internal_user',
  // the IMAP login proxy driven by the passdb's proxy/host fields (auth/proxy-fields.ts, imap/login-proxy.ts)
  'login_proxy_timeout', 'login_proxy_max_reconnects', 'login_proxy_max_disconnect_delay', 'auth_proxy_self',
  // the LMTP proxy: a passdb lookup per recipient (lmtp/lmtp-proxy.ts)
  'lmtp_proxy',
]);

/** Settings that only shape Dovecot's own processes; accepted without a warning. */
export const PROCESS_TUNING = new Set([
  'default_idle_kill', 'default_vsz_limit',
  'default_internal_group', 'version_ignore',
  'instance_name', 'shutdown_clients', 'verbose_proctitle', 'state_dir',
]);

export type CompatStatus = 'supported' | 'accepted, no effect yet (warns)' | 'accepted (process tuning)';

export function compatStatus(key: string): CompatStatus {
  if (SEALMAIL_HONOURS.has(key)) return 'supported';
  if (PROCESS_TUNING.has(key)) return 'accepted (process tuning)';
  return 'accepted, no effect yet (warns)';
}

/** The Settings table of dovecot-compat.md, one row per Dovecot global setting. */
export function compatSettingsTable(): string {
  const rows = [...DEFAULTS.settings.keys()].sort().map((k) => {
    const d = DEFAULTS.get(k) ?? '';
    const shown = d === '' ? '' : '`' + d.replace(/\|/g, '\\|') + '`';
    return `| \`${k}\` | ${shown} | ${compatStatus(k)} |`;
  });
  return ['| setting | Dovecot 2.3.19 default | Sealmail |', '|---|---|---|', ...rows].join('\n') + '\n';
}
