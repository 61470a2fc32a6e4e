/**
 * Connection-level commands after login (RFC 3501 §6.1; RFC 2971 ID; RFC
 * 5161 ENABLE; RFC 2342 NAMESPACE): CAPABILITY, NOOP, CHECK, LOGOUT, ID,
 * ENABLE, NAMESPACE, with the imap process's reply texts. Before login
 * the imap-login process answers: see prelogin.ts.
 */
import { atom, list, NIL, str } from '../wire/encoder.js';
import { AUTHED, type Command } from './types.js';
import { astring } from './args.js';

export const sessionCommands: Record<string, Command> = {
  CAPABILITY: {
    states: AUTHED,
    async run(ctx) {
      await ctx.session.untagged([atom('CAPABILITY'), ...ctx.session.capabilities().split(' ').map(atom)]);
      await ctx.ok('Capability completed');
    },
  },
  NOOP: {
    states: AUTHED,
    async run(ctx) {
      // NOTIFY: changes not yet sent are flushed first (Dovecot's cmd_noop, "mainly useful for testing")
      await ctx.session.notifyFlush();
      await ctx.ok('NOOP completed', await ctx.session.sendUpdates(true, undefined, true));
    },
  },
  CHECK: {
    states: ['selected'],
    async run(ctx) { await ctx.ok('Check completed', await ctx.session.sendUpdates(true, undefined, true)); },
  },
  LOGOUT: {
    states: AUTHED,
    async run(ctx) {
      await ctx.session.send({ kind: 'status', status: 'BYE', text: 'Logging out' });
      await ctx.session.send({ kind: 'tagged', tag: ctx.tag, status: 'OK', text: 'Logout completed (0.001 + 0.000 secs).' });
      ctx.session.logSessionEnd('Logged out');
      ctx.session.end();
    },
  },
  ID: {
    states: AUTHED,
    async run(ctx) {
      await ctx.session.untagged([atom('ID'), list([str('name'), str('Dovecot')])]);
      await ctx.ok('ID completed');
    },
  },
  ENABLE: {
    states: AUTHED,
    async run(ctx) {
      const got: string[] = [];
      for (const a of ctx.args) {
        const c = astring(a)?.toUpperCase();
        const name = c === 'IMAP4REV2' ? 'IMAP4rev2' : c; // the capability's own spelling (RFC 9051)
        if (name && ['UTF8=ACCEPT', 'IMAP4rev2'].includes(name) && !ctx.session.enabled.has(name)) { ctx.session.enabled.add(name); got.push(name); }
        // RFC 7162: Dovecot lists these even when already on (also when enabled implicitly)
        if (c === 'CONDSTORE' || c === 'QRESYNC') {
          await ctx.session.enableCondstore();
          ctx.session.enabled.add(c);
          if (!got.includes(c)) got.push(c);
        }
      }
      // Dovecot sends no ENABLED line when nothing was enabled
      if (got.length) await ctx.session.untagged([atom('ENABLED'), ...got.map(atom)]);
      await ctx.ok('Enabled');
    },
  },
  NAMESPACE: {
    states: AUTHED,
    async run(ctx) {
      // the personal namespaces that are not hidden (cmd-namespace.c); shared and public ones are not served
      // written as Dovecot writes it: no space between the namespaces' lists
      const own = ctx.session.store!.visibleNamespaces();
      const q = (v: string) => `"${v.replace(/[\\"]/g, (c) => '\\' + c)}"`;
      const personal = own.length ? atom(`(${own.map((n) => `(${q(ctx.session.mailboxOut(n.prefix))} ${q(n.sep)})`).join('')})`) : NIL;
      await ctx.session.untagged([atom('NAMESPACE'), personal, NIL, NIL]);
      await ctx.ok('Namespace completed');
    },
  },
};
