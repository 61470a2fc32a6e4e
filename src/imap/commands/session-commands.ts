/**
 * Connection-level commands (RFC 3501 §6.1, §6.2; RFC 2971 ID; RFC 5161
 * ENABLE; RFC 2342 NAMESPACE; RFC 4959 SASL-IR): CAPABILITY, NOOP, CHECK,
 * LOGOUT, ID, ENABLE, NAMESPACE, STARTTLS, LOGIN and AUTHENTICATE PLAIN /
 * LOGIN, with Dovecot's reply texts.
 */
import { atom, list, NIL, str } from '../wire/encoder.js';
import { ANY, AUTHED, NOT_AUTHED, type Command, type CommandContext } from './types.js';
import { ArgError, astring, needAstring } from './args.js';

async function doLogin(ctx: CommandContext, user: string, password: string, mech: string): Promise<void> {
  const s = ctx.session;
  const r = await s.opts.login.login(user, password, { service: 'imap', rip: s.opts.rip, lip: s.opts.lip, secured: s.secured, mech });
  if (!r.ok) {
    await ctx.no(r.text, r.code ? { name: r.code } : undefined);
    return;
  }
  s.user = r.user;
  s.store = r.store;
  s.quota = r.quota;
  s.mailPlugins = r.mailPlugins;
  s.metadata = r.metadata;
  s.state = 'authenticated';
  s.log.info(`Login: user=<${r.user}>, method=${mech}, rip=${s.opts.rip}, lip=${s.opts.lip}${s.secured ? ', TLS' : ''}`);
  await ctx.ok('Logged in', { name: 'CAPABILITY', args: s.capabilities() });
}

function decodePlain(b64: string): { user: string; password: string } | null {
  const raw = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return null;
  const parts = raw.toString('utf8').split('\0');
  if (parts.length !== 3) return null;
  const [authz, authc, pw] = parts;
  if (authz && authz !== authc) return { user: '', password: '' }; // no master users: fails as Dovecot does
  return { user: authc, password: pw };
}

export const sessionCommands: Record<string, Command> = {
  CAPABILITY: {
    states: ANY,
    async run(ctx) {
      await ctx.session.untagged([atom('CAPABILITY'), ...ctx.session.capabilities().split(' ').map(atom)]);
      await ctx.ok('Capability completed');
    },
  },
  NOOP: {
    states: ANY,
    async run(ctx) { await ctx.ok('NOOP completed', await ctx.session.sendUpdates(true, undefined, true)); },
  },
  CHECK: {
    states: ['selected'],
    async run(ctx) { await ctx.ok('Check completed', await ctx.session.sendUpdates(true, undefined, true)); },
  },
  LOGOUT: {
    states: ANY,
    async run(ctx) {
      await ctx.session.send({ kind: 'status', status: 'BYE', text: 'Logging out' });
      await ctx.session.send({ kind: 'tagged', tag: ctx.tag, status: 'OK', text: 'Logout completed (0.001 + 0.000 secs).' });
      ctx.session.end();
    },
  },
  ID: {
    states: ANY,
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
      await ctx.session.untagged([atom('ENABLED'), ...got.map(atom)]);
      await ctx.ok('Enabled');
    },
  },
  NAMESPACE: {
    states: AUTHED,
    async run(ctx) {
      // Sealmail's store has one private namespace with "." as separator (Maildir++)
      await ctx.session.untagged([atom('NAMESPACE'), list([list([str(''), str('.')])]), NIL, NIL]);
      await ctx.ok('Namespace completed');
    },
  },
  STARTTLS: {
    states: NOT_AUTHED,
    async run(ctx) {
      const s = ctx.session;
      if (s.secured) { await ctx.bad('TLS is already active.'); return; }
      if (!s.opts.starttls) { await ctx.bad('TLS support isn\'t enabled.'); return; }
      await s.send({ kind: 'tagged', tag: ctx.tag, status: 'OK', text: 'Begin TLS negotiation now.' });
      await s.upgradeTls();
    },
  },
  LOGIN: {
    states: NOT_AUTHED,
    async run(ctx) {
      if (ctx.session.plaintextDisabled()) {
        await ctx.no('Plaintext authentication disallowed on non-secure (SSL/TLS) connections.', { name: 'PRIVACYREQUIRED' });
        return;
      }
      let user: string, pw: string;
      try { user = needAstring(ctx.args[0]); pw = needAstring(ctx.args[1]); } catch (e) {
        if (e instanceof ArgError) { await ctx.bad('Error in IMAP command LOGIN: Invalid arguments.'); return; }
        throw e;
      }
      await doLogin(ctx, user, pw, 'PLAIN');
    },
  },
  AUTHENTICATE: {
    states: NOT_AUTHED,
    async run(ctx) {
      const s = ctx.session;
      const mech = astring(ctx.args[0])?.toUpperCase();
      if (mech !== 'PLAIN' && mech !== 'LOGIN') { await ctx.no('Unsupported authentication mechanism.'); return; }
      if (s.plaintextDisabled()) { await ctx.no('Plaintext authentication disallowed on non-secure (SSL/TLS) connections.', { name: 'PRIVACYREQUIRED' }); return; }
      const ask = async (challenge: string): Promise<string | null> => {
        await s.send({ kind: 'continue', text: challenge });
        const line = await s.readRawLine();
        if (line === null) return null;
        if (line === '*') { await ctx.bad('Authentication aborted by client.'); return null; }
        return line;
      };
      if (mech === 'PLAIN') {
        const ir = astring(ctx.args[1]);
        const resp = ir !== null ? (ir === '=' ? '' : ir) : await ask('');
        if (resp === null) return;
        const p = decodePlain(resp);
        if (!p) { await ctx.bad('Invalid base64 data in initial response'); return; }
        await doLogin(ctx, p.user, p.password, 'PLAIN');
        return;
      }
      const u = await ask(Buffer.from('Username:').toString('base64'));
      if (u === null) return;
      const p = await ask(Buffer.from('Password:').toString('base64'));
      if (p === null) return;
      await doLogin(ctx, Buffer.from(u, 'base64').toString('utf8'), Buffer.from(p, 'base64').toString('utf8'), 'LOGIN');
    },
  },
};
