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
 * - shared and public namespaces (warning: their mailboxes are not
 *   offered; private namespaces are served as Dovecot serves them).
 * - a `metric {}` whose events or fields Sealmail does not send (warning).
 * Nothing Sealmail skips may be silent (the project's rule); anything that
 * would lose or hide mail stops the start.
 */
import type { Origin } from './errors.js';
import { compatStatus } from './known-settings.js';
import { pluginSupport } from './mail-plugin-support.js';
import { splitPlugins } from './mail-plugins.js';
import type { DovecotConfig } from './settings.js';
import { namespaceConfigError } from './namespace-check.js';
import { metricSpecs } from './metric-settings.js';

export interface Finding {
  level: 'warning' | 'fatal';
  text: string;
}

/** The protocols Sealmail has services for. */
export const SERVED_PROTOCOLS = new Set(['imap', 'pop3', 'lmtp', 'sieve']);

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
  // namespaces Dovecot refuses every login with (mail-namespace.c namespaces_check): so does Sealmail
  // an unset separator is the layout's: "." for Maildir++ (maildir's default), "/" for LAYOUT=fs and the other drivers' fs lists
  const layoutSep = (loc: string) => {
    if (/(^|:)LAYOUT=fs(:|$)/i.test(loc)) return '/';
    if (/(^|:)LAYOUT=maildir\+\+(:|$)/i.test(loc)) return '.';
    const driver = /^([a-z0-9]+):/.exec(loc.trim())?.[1] ?? 'maildir';
    return driver === 'maildir' ? '.' : '/';
  };
  const privates = config.namespaces().filter((ns) => (ns.settings.type || 'private') === 'private' && ns.settings.disabled !== 'yes');
  if (privates.length) {
    const yes = (v: string | undefined) => v === 'yes';
    const checked = privates.map((ns) => ({
      prefix: ns.settings.prefix ?? '', sep: ns.settings.separator || layoutSep(ns.settings.location || config.get('mail_location') || ''),
      inbox: yes(ns.settings.inbox), hidden: yes(ns.settings.hidden), subscriptions: yes(ns.settings.subscriptions),
      list: (ns.settings.list === 'no' || ns.settings.list === 'children' ? ns.settings.list : 'yes') as 'yes' | 'no' | 'children',
    }));
    if (!checked.some((n) => n.prefix === '')) checked.push({ prefix: '', sep: '.', inbox: false, hidden: true, subscriptions: false, list: 'no' });
    const error = namespaceConfigError(checked.sort((a, b) => a.prefix.length - b.prefix.length));
    if (error) add('warning', `namespace configuration error: ${error}: Dovecot refuses every login with this, and so does Sealmail`);
  }
  // a metric Sealmail cannot fill is named, never a silent zero (metric-settings.ts)
  for (const m of metricSpecs(config.metrics())) for (const gap of m.gaps) add('warning', `metric ${m.name}: ${gap}`);
  for (const ns of config.namespaces()) {
    const where = `namespace ${ns.name || '(unnamed)'}`;
    const location = ns.settings.location;
    if (location) checkDriver(location, `${where}: location`, add);
    const type = ns.settings.type || 'private';
    // private namespaces (prefix, separator, list, hidden, subscriptions, location) are served as Dovecot does
    if (type !== 'private') add('warning', `${where}: type = ${type} is not supported by Sealmail: its mailboxes are not offered`);
  }
  return out;
}

function checkDriver(location: string, where: string, add: (level: Finding['level'], text: string) => void): void {
  const m = /^([a-z0-9]+):/.exec(location.trim());
  if (m && m[1] !== 'maildir') add('fatal', `${where} = ${location}: Sealmail stores mail only in Maildir, not ${m[1]}; it will not start on mail it cannot read`);
}
