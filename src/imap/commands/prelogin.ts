/**
 * The commands of a client that has not logged in, as Dovecot's imap-login
 * process answers them (a different program from the post-login imap
 * process, with its own texts; checked against Dovecot 2.3.19 by
 * test/imap/session/prelogin-diff.test.ts): CAPABILITY, NOOP, LOGOUT,
 * ENABLE (ignored), ID, STARTTLS, LOGIN and AUTHENTICATE PLAIN/LOGIN with
 * SASL-IR (RFC 4959). Replies carry no timing suffix. Any other command is
 * `BAD Error in IMAP command received by server.` and counts as invalid;
 * the third invalid command ends the connection with
 * `* BYE Too many invalid IMAP commands.` instead of its BAD.
 */
import { plaintextMechanisms } from '../../auth/mechanisms.js';
import { isIP } from 'node:net';
import type { ImapArg } from '../wire/parser.js';
import { atom, list, str } from '../wire/encoder.js';
import { astring } from './args.js';
import type { CommandContext } from './types.js';
import { proxyImapLogin, referImapLogin } from '../login-proxy.js';

export const PRELOGIN_MAX_BAD_COMMANDS = 3;
export const PRELOGIN_BAD_TEXT = 'Error in IMAP command received by server.';
const PRIVACY_TEXT = 'Plaintext authentication disallowed on non-secure (SSL/TLS) connections.';

/** What a pre-login command handler reports back: `invalid` counts toward the BYE. */
export type PreloginResult = 'done' | 'invalid';

type Handler = (ctx: CommandContext) => Promise<PreloginResult>;

/** A string argument the way imap-login reads LOGIN's: atom, quoted or literal. */
function stringArg(a: ImapArg | undefined): string | null {
  return a && a.type !== 'nil' && a.type !== 'list' ? astring(a) : null;
}

/** ID's parameter: NIL, or a list of string keys with nstring values (RFC 2971). */
function validId(args: ImapArg[]): boolean {
  if (args.length !== 1) return false;
  const [a] = args;
  if (a.type === 'nil') return true;
  if (a.type !== 'list') return false;
  return a.items.every((x, i) => (i % 2 === 0 ? stringArg(x) !== null : x.type === 'nil' || stringArg(x) !== null));
}

/**
 * imap-login-cmd-id.c: a client in login_trusted_networks (a webmail, a
 * proxy) names the real client in its first ID, and from then on that
 * address is the one logged, penalised and checked: x-originating-ip
 * (rip) and x-connected-ip (lip), their ports, and x-proxy-ttl (the hops
 * left to a proxied login: a proxy loop ends); keys match
 * case-insensitively, values that do not parse are ignored, NIL values are
 * never applied. The session-id keys are accepted and unused.
 */
function forwardedClient(ctx: CommandContext): void {
  const s = ctx.session;
  const first = !s.idSeen;
  s.idSeen = true;
  const [a] = ctx.args;
  if (!first || !s.opts.trusted || a.type !== 'list') return;
  for (let i = 0; i + 1 < a.items.length; i += 2) {
    const key = stringArg(a.items[i])?.toLowerCase();
    const value = stringArg(a.items[i + 1]); // null for NIL
    if (key === undefined || value === null) continue;
    if (key === 'x-originating-ip' && isIP(value)) s.opts.rip = value;
    else if (key === 'x-connected-ip' && isIP(value)) s.opts.lip = value;
    else if (key === 'x-originating-port' && /^\d{1,5}$/.test(value) && Number(value) < 65536) s.forwardedPorts.rport = Number(value);
    else if (key === 'x-connected-port' && /^\d{1,5}$/.test(value) && Number(value) < 65536) s.forwardedPorts.lport = Number(value);
    // the hops a proxied login may still take (login-proxy.c refuses at 1: a loop)
    else if (key === 'x-proxy-ttl' && /^\d{1,9}$/.test(value)) s.proxyTtl = Number(value);
  }
}

async function login(ctx: CommandContext, user: string, password: string, mech: string, loginUser?: string): Promise<void> {
  const s = ctx.session;
  const r = await s.opts.login.login(user, password, { service: 'imap', rip: s.opts.rip, lip: s.opts.lip, lport: s.ports.lport, secured: s.secured, mech, loginUser, session: s.loginSession, validClientCert: s.clientCert === 'valid' });
  if (!r.ok && 'handOff' in r) { await r.handOff(ctx.tag); return; } // a mail process answers from here on
  if (!r.ok && 'route' in r) {
    // the passdb sends this login elsewhere: a backend (proxy) or the client (referral)
    if (r.route.kind === 'proxy') await proxyImapLogin(s, ctx.tag, r.route.route, { user: r.user, mech });
    else if (r.route.kind === 'referral') await referImapLogin(s, ctx.tag, r.route.referral, { user: r.user, mech });
    return;
  }
  if (!r.ok && 'initFailed' in r) {
    // as Dovecot's imap process: the login itself succeeded (imap-login's Login line), opening the user's mail did not
    s.logHandedOff(user, mech, process.pid);
    await ctx.ok('Logged in, but initialization failed.');
    await s.bye('Internal error occurred. Refer to server log for more information.');
    return;
  }
  if (!r.ok) {
    s.authFailed('unnamed' in r && r.unnamed ? '' : user, r.code === 'UNAVAILABLE');
    await ctx.no(r.text, r.code ? { name: r.code } : undefined);
    return;
  }
  // the master counts sessions: mail_max_userip_connections, service imap's limits (session.ts)
  if (!await s.admitLogin(ctx.tag, r.user, mech)) return;
  s.loggedIn(r, mech);
  if (r.alert) await s.send({ kind: 'status', status: 'OK', code: { name: 'ALERT' }, text: r.alert });
  // a client that asked for CAPABILITY before logging in may not read the response code (Dovecot's
  // client_ignores_capability_resp_code; a CAPABILITY after STARTTLS doesn't count)
  if (s.capabilityAskedBeforeLogin) {
    await s.untagged([atom('CAPABILITY'), ...s.capabilities().split(' ').map(atom)]);
    await ctx.ok('Logged in');
  } else {
    await ctx.ok('Logged in', { name: 'CAPABILITY', args: s.capabilities() });
  }
}

/** SASL PLAIN's message: authzid NUL authcid NUL password; null when malformed. An authzid other than the authcid asks for a master user login. */
function decodePlain(raw: Buffer): { user: string; password: string; loginUser?: string } | null {
  const parts = raw.toString('utf8').split('\0');
  if (parts.length !== 3) return null;
  const [authz, authc, pw] = parts;
  return { user: authc, password: pw, loginUser: authz && authz !== authc ? authz : undefined };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const preloginCommands: Record<string, Handler> = {
  async CAPABILITY(ctx) {
    const s = ctx.session;
    if (!s.tlsStarted) s.capabilityAskedBeforeLogin = true;
    await s.untagged([atom('CAPABILITY'), ...s.capabilities().split(' ').map(atom)]);
    await ctx.ok('Pre-login capabilities listed, post-login capabilities have more.');
    return 'done';
  },
  async NOOP(ctx) { await ctx.ok('NOOP completed.'); return 'done'; },
  async LOGOUT(ctx) {
    await ctx.session.send({ kind: 'status', status: 'BYE', text: 'Logging out' });
    await ctx.ok('Logout completed.');
    ctx.session.loginLog('Aborted login by logging out');
    ctx.session.end();
    return 'done';
  },
  async ENABLE(ctx) {
    await ctx.session.untagged([atom('ENABLED')]);
    await ctx.ok('ENABLE ignored in non-authenticated state.');
    return 'done';
  },
  async ID(ctx) {
    if (!validId(ctx.args)) { await ctx.bad('Invalid ID parameters'); return 'done'; }
    forwardedClient(ctx);
    await ctx.session.untagged([atom('ID'), list([str('name'), str('Dovecot')])]);
    await ctx.ok('ID completed.');
    return 'done';
  },
  async STARTTLS(ctx) {
    const s = ctx.session;
    if (s.secured) { await ctx.bad('TLS is already active.'); return 'done'; }
    if (!s.opts.starttls) { await ctx.bad('TLS support isn\'t enabled.'); return 'done'; }
    await ctx.ok('Begin TLS negotiation now.');
    await s.upgradeTls();
    return 'done';
  },
  async LOGIN(ctx) {
    const user = stringArg(ctx.args[0]);
    const pw = stringArg(ctx.args[1]);
    if (user === null || pw === null || ctx.args.length !== 2) return 'invalid';
    if (ctx.session.plaintextDisabled()) { await ctx.no(PRIVACY_TEXT, { name: 'PRIVACYREQUIRED' }); return 'done'; }
    // Dovecot's LOGIN command is a PLAIN authentication: refused when auth_mechanisms lacks it
    if (!plaintextMechanisms(ctx.session.config).includes('PLAIN')) {
      await ctx.no('Unsupported authentication mechanism.', { name: 'ALERT' });
      return 'done';
    }
    await login(ctx, user, pw, 'PLAIN');
    return 'done';
  },
  async AUTHENTICATE(ctx) {
    const s = ctx.session;
    const m = ctx.args[0];
    if (!m || m.type === 'nil' || m.type === 'list') return 'invalid';
    // imap-login reads the mechanism as a word: a quoted "PLAIN" names no mechanism it knows
    const mech = m.type === 'atom' ? m.value.toUpperCase() : '';
    if (!plaintextMechanisms(s.config).includes(mech)) { await ctx.no('Unsupported authentication mechanism.', { name: 'ALERT' }); return 'done'; }
    if (s.plaintextDisabled()) { await ctx.no(PRIVACY_TEXT, { name: 'PRIVACYREQUIRED' }); return 'done'; }
    /** One SASL response from the client: null when the client aborted or went away (replied to here). */
    const ask = async (challenge: string): Promise<Buffer | null> => {
      await s.send({ kind: 'continue', text: challenge });
      const line = await s.readRawLine();
      if (line === null) return null;
      if (line === '*') { await ctx.bad('Authentication aborted by client.'); return null; }
      if (!BASE64.test(line)) { await ctx.no('Invalid base64 in response', { name: 'ALERT' }); return null; }
      return Buffer.from(line, 'base64');
    };
    if (mech === 'PLAIN') {
      let resp: Buffer | null;
      const ir = stringArg(ctx.args[1]);
      if (ir !== null) {
        if (ir !== '=' && !BASE64.test(ir)) { await ctx.bad('Invalid base64 data in initial response'); return 'done'; }
        resp = Buffer.from(ir === '=' ? '' : ir, 'base64');
      } else {
        resp = await ask('');
        if (resp === null) return 'done';
      }
      // a malformed PLAIN message is a failed authentication, with the failure delay
      const p = decodePlain(resp) ?? { user: '', password: '' };
      await login(ctx, p.user, p.password, 'PLAIN', p.loginUser);
      return 'done';
    }
    const u = await ask(Buffer.from('Username:').toString('base64'));
    if (u === null) return 'done';
    const p = await ask(Buffer.from('Password:').toString('base64'));
    if (p === null) return 'done';
    await login(ctx, u.toString('utf8'), p.toString('utf8'), 'LOGIN');
    return 'done';
  },
};
