/**
 * `sealadm mailbox metadata set|unset|get|list` = doveadm's
 * (doveadm-mail-mailbox-metadata.c), on the same `file:` mail_attribute_dict
 * Sealmail's IMAP METADATA uses (mailstore/metadata.ts) and Dovecot's layout:
 * `/private/KEY` of a mailbox is `priv/<GUID>/KEY`, `/shared/KEY`
 * `shared/<GUID>/KEY`; `-s` with an empty mailbox name is a server entry (on
 * INBOX, under `vendor/vendor.dovecot/pvt/server/`).
 *
 * doveadm works below IMAP's rules, and so does this: no `imap_metadata`
 * needed, keys only lowercased, Dovecot's internal attributes readable and
 * writable. What lib-storage's internal attributes do is kept
 * (mailbox-attribute-internal.c): `/private/specialuse` and the server's
 * `/shared/comment` and `/shared/admin` come from the configuration and
 * cannot be changed; `list` adds the registered names after each type's
 * dict keys (`comment` only with a dict; server ones only on INBOX).
 * Keys are listed in the dict file's order (Dovecot's file dict: its hash
 * table's). Sealmail's own key copies (`vendor/vendor.sealmail/`) are
 * listed but not written here.
 */
import { AttributeDict, ATTR_PVT, attributeDictFile } from '../../crypt/attributes.js';
import { MailStoreError } from '../../mailstore/errors.js';
import { mailboxConfig } from '../../mailstore/user-store.js';
import { utf8ToMutf7 } from '../../mailstore/api/mailbox-utf7.js';
import { getopt } from '../args.js';
import { CommandError, EX_USAGE, UsageError, type CliCommand, type CommandContext } from '../command.js';
import { listUsers, openUserContext } from './mailbox.js';

const SERVER = `${ATTR_PVT}server/`;
/** doveadm's exit codes: DOVEADM_EX_NOTFOUND (a missing mailbox), EX_DATAERR's neighbour for MAIL_ERROR_NOTPOSSIBLE. */
const EX_NOTFOUND = 68;
const EX_NOTPOSSIBLE = 65;

type AttrType = 'priv' | 'shared';
const TYPE_PREFIX: Record<AttrType, string> = { priv: '/private', shared: '/shared' };

/** The registered internal attributes per type, sorted by key as lib-storage keeps them. */
const INTERNAL: Record<AttrType, { key: string; authority: boolean }[]> = {
  priv: [{ key: 'comment', authority: false }, { key: 'specialuse', authority: true }],
  shared: [{ key: 'comment', authority: false }, { key: `${SERVER}admin`, authority: true }, { key: `${SERVER}comment`, authority: true }],
};

type Op = 'set' | 'unset' | 'get' | 'list';
const USAGE: Record<Op, string> = {
  set: 'doveadm mailbox metadata set [-u <user>|-A] [-S <socket_path>] [-s] <mailbox> <key> <value>',
  unset: 'doveadm mailbox metadata unset [-u <user>|-A] [-S <socket_path>] [-s] <mailbox> <key>',
  get: 'doveadm mailbox metadata get [-u <user>|-A] [-S <socket_path>] [-s] <mailbox> <key>',
  list: 'doveadm mailbox metadata list [-u <user>|-A] [-S <socket_path>] [-s] [-p] <mailbox> [<key prefix>]',
};

/** cmd_mailbox_metadata_parse_key: lowercased, /private or /shared first (a fatal usage error otherwise). */
function parseKey(arg: string): { type: AttrType; key: string } {
  const a = arg.toLowerCase();
  if (a.startsWith('/private/')) return { type: 'priv', key: a.slice(9) };
  if (a.startsWith('/shared/')) return { type: 'shared', key: a.slice(8) };
  if (a === '/private') return { type: 'priv', key: '' };
  if (a === '/shared') return { type: 'shared', key: '' };
  throw new CommandError(`Fatal: Invalid metadata key '${a}': Must begin with /private or /shared`, EX_USAGE);
}

/** A failure for one user: doveadm's error line (with the user) and exit code; the next user goes on. */
class UserFailure extends Error { constructor(message: string, readonly code: number) { super(message); } }

interface Target {
  user: string;
  /** The mailbox's vname (INBOX for server entries). */
  box: string;
  inbox: boolean;
  dict: AttributeDict | null;
  guid(): Promise<string>;
  /** What the configuration says for an authority attribute. */
  authority(type: AttrType, key: string): string | null | undefined;
}

async function openTarget(ctx: CommandContext, user: string, mailbox: string, server: boolean): Promise<Target> {
  const uc = await openUserContext(ctx, user);
  const store = uc.plainStore;
  const box = server ? 'INBOX' : mailbox;
  const dictPath = attributeDictFile(uc.config.get('mail_attribute_dict', { protocol: 'doveadm' }), uc.mailUser.user);
  const specialUse = mailboxConfig(uc.config, 'doveadm').specialUse?.[box];
  return {
    user, box, inbox: box.toUpperCase() === 'INBOX',
    dict: dictPath ? new AttributeDict(dictPath) : null,
    guid: async () => {
      try { return await store.mailboxGuid(utf8ToMutf7(box)); } catch (e) {
        if (e instanceof MailStoreError && e.code === 'NONEXISTENT') throw new UserFailure(`Mailbox doesn't exist: ${box}`, EX_NOTFOUND);
        throw e;
      }
    },
    authority(type, key) {
      const reg = INTERNAL[type].find((r) => r.key === key && r.authority);
      if (!reg) return undefined;
      if (type === 'priv') return specialUse ?? null;
      return uc.config.get(key === `${SERVER}admin` ? 'mail_server_admin' : 'mail_server_comment', { protocol: 'doveadm' }) || null;
    },
  };
}

/** mailbox_internal_attributes_get: the registered names under `prefix`, relative to it. */
function internalNames(type: AttrType, prefix: string, haveDict: boolean, inbox: boolean): string[] {
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const out: string[] = [];
  for (const r of INTERNAL[type]) {
    if (r.key < bare) continue; // before the insert position
    let k = r.key;
    if (bare) {
      if (!k.startsWith(bare)) break;
      if (k[bare.length] === '/') k = k.slice(bare.length + 1);
      else if (k.length === bare.length) k = '';
      else break;
    }
    if (!haveDict && !r.authority) continue;
    if (!inbox && r.key.startsWith(SERVER)) continue; // server attributes only when iterating INBOX
    out.push(k);
  }
  return out;
}

function command(op: Op): CliCommand {
  return {
    async run(ctx) {
      const { opts, rest } = getopt(ctx.args, op === 'list' ? 'u:AS:sp' : 'u:AS:s');
      const want = { set: 3, unset: 2, get: 2 } as Record<Op, number>;
      if (op === 'list' ? rest.length < 1 || rest.length > 2 : rest.length !== want[op]) throw new UsageError(USAGE[op]);
      const [mailbox] = rest;
      const parsed = rest[1] !== undefined ? parseKey(rest[1]) : { type: 'priv' as AttrType, key: '' };
      const type = parsed.type;
      let key = parsed.key;
      const value = op === 'set' ? rest[2] : null;
      const allowServer = opts.has('s');
      const opName = op === 'unset' ? 'set' : op;
      const p = ctx.printer('flow');
      p.header({ key: op === 'list' ? 'key' : 'value', hideTitle: true });
      // doveadm's mail commands act on $USER without -u/-A
      const self = process.env.USER;
      if (!opts.has('u') && !opts.has('A') && !self) throw new CommandError('Fatal: USER environment is missing and -u option not used', EX_USAGE);
      const users = opts.has('A') ? await listUsers(ctx) : [(opts.get('u') as string | undefined) ?? self!];
      let exit = 0;
      const server = mailbox === '';
      if (server) key = SERVER + key;
      for (const user of users) {
        const fail = (text: string, code: number) => { ctx.err.write(`sealadm(${user}): Error: ${text}\n`); exit = code; };
        if (server && !allowServer) { fail(`Failed to ${opName} attribute: mailbox name cannot be empty`, EX_USAGE); continue; }
        const t = await openTarget(ctx, user, mailbox, server);
        try {
          if (op === 'set' || op === 'unset') {
            try { await t.guid(); } catch (e) { if (e instanceof UserFailure) throw new UserFailure(`Failed to open mailbox: ${e.message}`, e.code); throw e; }
            try { await setAttr(t, type, key, value); } catch (e) { if (e instanceof UserFailure) throw new UserFailure(`Failed to set attribute: ${e.message}`, e.code); throw e; }
          } else if (op === 'get') {
            try { p.value((await getAttr(t, type, key)) ?? ''); } catch (e) { if (e instanceof UserFailure) throw new UserFailure(`Failed to get attribute: ${e.message}`, e.code); throw e; }
          } else {
            for (const ty of ['priv', 'shared'] as const) {
              if (key !== '' && ty !== type) continue;
              for (const name of await listAttr(t, ty, key, (text, code) => fail(`Mailbox ${t.box}: Failed to iterate mailbox attributes: ${text}`, code))) {
                p.value(opts.has('p') ? `${TYPE_PREFIX[ty]}/${name}` : name);
              }
            }
          }
        } catch (e) {
          if (!(e instanceof UserFailure)) throw e;
          fail(e.message, e.code);
        }
      }
      p.flush();
      return exit;
    },
  };
}

async function setAttr(t: Target, type: AttrType, key: string, value: string | null): Promise<void> {
  if (t.authority(type, key) !== undefined || key.startsWith('vendor/vendor.sealmail/') || key.startsWith(`${SERVER}vendor/vendor.sealmail/`)) {
    throw new UserFailure(`The ${TYPE_PREFIX[type]}/${key} attribute cannot be changed`, EX_NOTPOSSIBLE);
  }
  if (!t.dict) throw new UserFailure('Mailbox attributes not enabled', EX_NOTPOSSIBLE);
  // Dovecot 2.3 writes an empty key and then reads its own index as corrupted: refused here
  if (key === '') throw new UserFailure('Empty attribute key', EX_NOTPOSSIBLE);
  const k = `${type}/${await t.guid()}/${key}`;
  await t.dict.update((m) => { if (value === null) m.delete(k); else m.set(k, value); });
}

async function getAttr(t: Target, type: AttrType, key: string): Promise<string | null> {
  const auth = t.authority(type, key);
  if (auth !== undefined) return auth;
  if (!t.dict) throw new UserFailure('Mailbox attributes not enabled', EX_NOTPOSSIBLE);
  return (await t.dict.read()).get(`${type}/${await t.guid()}/${key}`) ?? null;
}

/** One type's keys under the prefix (relative to it), then the internal names not among them. */
async function listAttr(t: Target, type: AttrType, prefix: string, failed: (text: string, code: number) => void): Promise<string[]> {
  const extra = internalNames(type, prefix, !!t.dict, t.inbox);
  const out: string[] = [];
  if (t.dict) {
    try {
      const full = `${type}/${await t.guid()}/${prefix}`;
      for (const k of (await t.dict.read()).keys()) {
        if (!k.startsWith(full)) continue;
        const name = k.slice(full.length);
        if (!extra.some((x) => x.toLowerCase() === name.toLowerCase())) out.push(name);
      }
    } catch (e) {
      if (!(e instanceof UserFailure)) throw e;
      failed(e.message, e.code);
    }
  }
  return [...out, ...extra];
}

export const metadataSetCommand = command('set');
export const metadataUnsetCommand = command('unset');
export const metadataGetCommand = command('get');
export const metadataListCommand = command('list');
