/**
 * Change notification for IMAP IDLE (RFC 2177) across processes: Dovecot
 * and other Sealmail processes change a Maildir only through new/, cur/ and
 * dovecot-uidlist, so watching those (fs.watch, i.e. inotify) plus an
 * in-process bus for our own writes is enough. Events are coalesced; the
 * subscriber re-syncs the folder to learn what changed.
 */
import { watch, type FSWatcher } from 'node:fs';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';

/** In-process bus: writers in this process announce changes by folder directory. */
const bus = new EventEmitter();
bus.setMaxListeners(0);

export function announceChange(folderDir: string): void {
  bus.emit(folderDir);
}

export interface ChangeSubscription { close(): void }

/**
 * Calls `onChange` (at most once per `coalesceMs`) after anything changed in
 * the folder at `folderDir`: a delivery, flag change, expunge or uidlist
 * update, by this process or any other.
 */
export function watchFolder(folderDir: string, onChange: () => void, coalesceMs = 50, controlDir = folderDir): ChangeSubscription {
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const fire = () => {
    if (closed || timer) return;
    timer = setTimeout(() => { timer = null; if (!closed) onChange(); }, coalesceMs);
  };
  const watchers: FSWatcher[] = [];
  for (const d of [join(folderDir, 'new'), join(folderDir, 'cur')]) {
    try { watchers.push(watch(d, { persistent: true }, fire)); } catch { /* directory missing: the bus still works */ }
  }
  try {
    watchers.push(watch(controlDir, { persistent: true }, (_ev, name) => {
      if (name === null || String(name).startsWith('dovecot-uidlist')) fire();
    }));
  } catch { /* ignore */ }
  for (const w of watchers) w.on('error', () => { /* folder deleted: nothing more will come */ });
  bus.on(folderDir, fire);
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
      bus.off(folderDir, fire);
    },
  };
}
