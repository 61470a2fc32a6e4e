/**
 * IDLE (RFC 2177): untagged updates pushed as soon as the mailbox changes —
 * another session, LMTP, another Sealmail process or Dovecot (the store's
 * inotify watch plus in-process bus) — and "* OK Still here" every
 * imap_idle_notify_interval (Dovecot: 2 min; 0 = never) so NAT boxes keep
 * the connection. DONE ends it.
 */
import { watchFolder } from '../../mailstore/changes.js';
import { AUTHED, type Command } from './types.js';

export const idleCommands: Record<string, Command> = {
  IDLE: {
    states: AUTHED,
    async run(ctx) {
      const s = ctx.session;
      await s.send({ kind: 'continue', text: 'idling' });
      let busy = Promise.resolve();
      const notify = () => { busy = busy.then(async () => { await s.sendUpdates(true); }).catch(() => undefined); };
      const sel = s.selected;
      const sub = sel ? watchFolder(sel.folder.dir, notify, 50, sel.folder.controlDir) : null;
      // 0 turns the keepalive off, as in Dovecot's idle_add_keepalive_timeout
      const interval = ctx.session.config.getTime('imap_idle_notify_interval', { protocol: 'imap' });
      // as Dovecot, each keepalive also restarts the autologout timer: an idling client may stay for ever
      const keepalive = interval > 0 ? setInterval(() => { busy = busy.then(() => s.send({ kind: 'status', status: 'OK', text: 'Still here' })).then(() => s.keepAlive()); }, interval) : undefined;
      keepalive?.unref();
      notify(); // anything that changed since the last command
      s.idling = true; // NOTIFY's changes of other mailboxes go out while idling
      s.notifyLater();
      const line = await s.readRawLine();
      s.idling = false;
      sub?.close();
      clearInterval(keepalive);
      await busy;
      if (line === null) return;
      if (line.trim().toUpperCase() !== 'DONE') { await ctx.bad('Expected DONE.'); return; }
      await ctx.ok('Idle completed');
    },
  },
};
