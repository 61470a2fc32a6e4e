/**
 * What Sealmail will not do the way Dovecot does with this configuration,
 * said at start (server/main.ts) and by `sealadm config -W`, each naming the
 * file:line that asked for it:
 * - a setting Dovecot knows that has no effect in Sealmail (warning);
 * - a mail plugin Sealmail lacks (warning, or fatal where mail would be lost
 *   or unreadable: mail-plugin-support.ts);
 * - a mail storage driver other than Maildir, globally or in a namespace
 *   (fatal: Sealmail cannot read that mail at all);
 * - a protocol in `protocols` Sealmail does not serve (warning);
 * - namespace settings Sealmail ignores (a separator other than ".", a
 *   prefix, shared/public or extra private namespaces: warnings; a
 *   separator with LAYOUT=fs would hide folders: fatal).
 * - a `metric {}` whose events or fields Sealmail does not send (warning).
 * Nothing Sealmail skips may be silent (the project's rule); anything that
 * would lose or hide mail stops the start.
 */
import type { Origin } from './errors.js';
import { compatStatus } from './known-settings.js';
import { pluginSupport } from './mail-plugin-support.js';
import { splitPlugins } from './mail-plugins.js';
import type { DovecotConfig } from './settings.js';
import { metricSpecs } from './metric-settings.js';

export interface Finding {
  level: 'warning' | 'fatal';
  text: string;
}

/** The protocols Sealmail has services for. */
export const SERVED_PROTOCOLS = new Set(['imap', 'pop3', 'lmtp', 'sieve']);

/** `:LAYOUT=fs` in a mail location: its hierarchy separator is "/" unless a namespace sets one. */
const isFsLayout = (location: string): boolean => /(^|:)LAYOUT=fs(:|$)/i.test(location);

const at = (o: Origin): string => (o.line > 0 ? `${o.file} line ${o.line}` : o.file || 'command line');

export function supportFindings(config: DovecotConfig): Finding[] {
  const out: Finding[] = [];
  const said = new Set<string>();
  const add = (level: Finding['level'], text: string) => {
    if (said.has(text)) return;
    said.add(text);
    out.push({ level, text });
  };
  for (const f of config.filters) {
    for (const [key, e] of f.root.settings) {
      if (compatStatus(key) === 'accepted, no effect yet (warns)') {
        add('warning', `${at(e.origin)}: ${key}: not supported by Sealmail yet, the setting has no effect (see dovecot-compat.md)`);
      }
      if (key === 'mail_plugins') {
        for (const name of splitPlugins(e.value)) {
          const p = pluginSupport(name);
          if (p.status === 'warns') add('warning', `${at(e.origin)}: mail_plugins: ${name} is not supported by Sealmail: ${p.note}`);
          else if (p.status === 'refuses') add('fatal', `${at(e.origin)}: mail_plugins: ${name} is not supported by Sealmail, which will not start with it: ${p.note}. Remove it from mail_plugins, or keep running Dovecot`);
        }
      }
      if (key === 'mail_location') checkDriver(e.value, `${at(e.origin)}: mail_location`, add);
      if (key === 'protocols') {
        for (const p of e.value.split(/\s+/).filter(Boolean)) {
          if (!SERVED_PROTOCOLS.has(p) && p !== 'none') add('warning', `${at(e.origin)}: protocols: Sealmail has no ${p} service; no listener opens for it`);
        }
      }
    }
  }
  // a metric Sealmail cannot fill is named, never a silent zero (metric-settings.ts)
  for (const m of metricSpecs(config.metrics())) for (const gap of m.gaps) add('warning', `metric ${m.name}: ${gap}`);
  const globalLocation = config.get('mail_location');
  let privates = 0;
  for (const ns of config.namespaces()) {
    const where = `namespace ${ns.name || '(unnamed)'}`;
    const location = ns.settings.location;
    if (location) checkDriver(location, `${where}: location`, add);
    const type = ns.settings.type || 'private';
    if (type !== 'private') {
      add('warning', `${where}: type = ${type} is not supported by Sealmail: its mailboxes are not offered`);
      continue;
    }
    if (++privates > 1) add('warning', `${where}: Sealmail serves one private namespace (the inbox one): this one's mailboxes are not listed`);
    // an unset separator is the layout's: "/" for LAYOUT=fs (Dovecot's fs mailbox list), "." for Maildir++
    const fsLayout = isFsLayout(location || globalLocation);
    const sep = ns.settings.separator || (fsLayout ? '/' : '.');
    const shown = ns.settings.separator ? `separator = ${sep}` : `separator (unset: "${sep}")`;
    if (sep !== '.') {
      // with LAYOUT=fs the separator is part of what is on disk: a folder Dovecot made as "a.b" would be
      // split in two levels, mail Sealmail could not show where the user left it
      if (fsLayout) add('fatal', `${where}: ${shown} with LAYOUT=fs: Sealmail names folders with "." only, so folders Dovecot created with "." in their names would be hidden; it will not start on them (with no "." in any folder name, separator = . makes Dovecot show the same names)`);
      else add('warning', `${where}: ${shown} is not supported by Sealmail: NAMESPACE and LIST use ".", so clients see Archive.2024 where Dovecot showed Archive${sep}2024 (and may download those folders again)`);
    }
    const prefix = ns.settings.prefix ?? '';
    if (prefix !== '') add('warning', `${where}: prefix = ${prefix} is not supported by Sealmail: folders are listed without it, so clients that knew "${prefix}Sent" see "Sent" (and may download those folders again)`);
  }
  // no namespace at all: Dovecot makes one with the layout's separator
  if (config.namespaces().length === 0 && isFsLayout(globalLocation)) {
    add('fatal', 'namespace (none configured: Dovecot\'s default, separator "/") with LAYOUT=fs: Sealmail names folders with "." only, so folders Dovecot created with "." in their names would be hidden; it will not start on them (with no "." in any folder name, a namespace inbox { separator = . } makes Dovecot show the same names)');
  }
  return out;
}

function checkDriver(location: string, where: string, add: (level: Finding['level'], text: string) => void): void {
  const m = /^([a-z0-9]+):/.exec(location.trim());
  if (m && m[1] !== 'maildir') add('fatal', `${where} = ${location}: Sealmail stores mail only in Maildir, not ${m[1]}; it will not start on mail it cannot read`);
}
