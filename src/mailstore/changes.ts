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

/** One set of inotify watches per folder, however many subscribers (IDLE sessions) it has. */
interface FolderWatch { watchers: FSWatcher[]; subscribers: Set<() => void>; fireAll: () => void }
const folderWatches = new Map<string, FolderWatch>();

function acquireWatch(folderDir: string, controlDir: string): FolderWatch {
  const key = `${folderDir}\0${controlDir}`;
  let fw = folderWatches.get(key);
  if (fw) return fw;
  const subscribers = new Set<() => void>();
  const fireAll = () => { for (const s of subscribers) s(); };
  const watchers: FSWatcher[] = [];
  for (const d of [join(folderDir, 'new'), join(folderDir, 'cur')]) {
    try { watchers.push(watch(d, { persistent: true }, fireAll)); } catch { /* directory missing: the bus still works */ }
  }
  try {
    watchers.push(watch(controlDir, { persistent: true }, (_ev, name) => {
      if (name === null || String(name).startsWith('dovecot-uidlist')) fireAll();
    }));
  } catch { /* ignore */ }
  for (const w of watchers) w.on('error', () => { /* folder deleted: nothing more will come */ });
  bus.on(folderDir, fireAll);
  fw = { watchers, subscribers, fireAll };
  folderWatches.set(key, fw);
  return fw;
}

function releaseWatch(folderDir: string, controlDir: string, fw: FolderWatch): void {
  if (fw.subscribers.size) return;
  for (const w of fw.watchers) w.close();
  bus.off(folderDir, fw.fireAll);
  folderWatches.delete(`${folderDir}\0${controlDir}`);
}

/**
 * Calls `onChange` (at most once per `coalesceMs`) after anything changed in
 * the folder at `folderDir`: a delivery, flag change, expunge or uidlist
 * update, by this process or any other. Subscribers of one folder share its
 * watches, so thousands of idle sessions cost one set of inotify watches.
 * `coalesceMs` 0: called at once, uncoalesced (a subscriber that only marks
 * the folder for a later look, as NOTIFY does).
 */
export function watchFolder(folderDir: string, onChange: () => void, coalesceMs = 50, controlDir = folderDir): ChangeSubscription {
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const fire = () => {
    if (closed || timer) return;
    if (coalesceMs <= 0) { onChange(); return; }
    timer = setTimeout(() => { timer = null; if (!closed) onChange(); }, coalesceMs);
  };
  const fw = acquireWatch(folderDir, controlDir);
  fw.subscribers.add(fire);
  return {
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      fw.subscribers.delete(fire);
      releaseWatch(folderDir, controlDir, fw);
    },
  };
}

/**
 * Calls `onChange` at once whenever an entry of one of `dirs` is added,
 * removed or renamed, or a file in it changes (a mailbox list: Maildir++
 * folders are directories of the root, the subscriptions file lives in the
 * root's control directory). Missing directories are skipped.
 */
export function watchDirs(dirs: string[], onChange: () => void): ChangeSubscription {
  const watchers: FSWatcher[] = [];
  for (const d of new Set(dirs)) {
    try { const w = watch(d, { persistent: false }, () => onChange()); w.on('error', () => undefined); watchers.push(w); } catch { /* missing: nothing to watch */ }
  }
  return { close() { for (const w of watchers) w.close(); watchers.length = 0; } };
}
