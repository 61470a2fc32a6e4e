/**
 * The compact message table of a Maildir folder (message-table.ts) and the
 * compact MODSEQ records (modseq-entries.ts): rows added in UID order, found
 * by UID and by position (sequence number − 1), flags/keywords from the
 * interned file-name suffix, renames, expunges (in place, order kept,
 * snapshots of what left), views (MessageRef) that follow the current table
 * and fall back to the snapshot; MODSEQ records in insertion order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageRef, MessageTable, type MaildirMessage, type RowInit, type TableOwner } from '../../src/mailstore/maildir/message-table.js';
import { ModseqEntries } from '../../src/mailstore/maildir/modseq-entries.js';

const KW = ['$Forwarded', 'Work', 'Later'];
const nameFor = (i: number) => KW[i] ?? `unknown-${i}`;

function row(uid: number, info: string | null, extra: Partial<RowInit> = {}): RowInit {
  const base = `17000000${uid}.M1P1.host,S=${100 + uid},W=${110 + uid}`;
  return { uid, base, file: info === null ? base : `${base}:${info}`, sub: info === null ? 'new' : 'cur', recent: false, changed: 0, modseq: 0, ...extra };
}

function table(rows: RowInit[]): MessageTable {
  const t = new MessageTable(2, nameFor); // small: add() must grow it
  for (const r of rows) t.add(r);
  return t;
}

test('rows keep every value; lookup by UID and by position', () => {
  const t = table([row(3, '2,S', { size: 103, vsize: 113, modseq: 7, changed: 2, recent: true }), row(5, null), row(9, '2,FRab', { modseq: 12 }), row(40, '2,')]);
  assert.equal(t.length, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => t.uid(i)), [3, 5, 9, 40]);
  assert.equal(t.rowOf(9), 2);
  assert.equal(t.rowOf(4), -1);
  assert.equal(t.rowOf(41), -1);
  assert.equal(t.rowOf(1), -1);
  assert.equal(t.rowOf(40, 3), 3);
  assert.equal(t.rowOf(40, 0), 3, 'a wrong hint still finds the row');
  assert.equal(t.size(0), 103);
  assert.equal(t.vsize(0), 113);
  assert.equal(t.size(1), undefined, 'unknown size stays unknown');
  assert.equal(t.modseq(2), 12);
  assert.equal(t.changed(0), 2);
  assert.equal(t.recent(0), true);
  assert.equal(t.recent(1), false);
  assert.equal(t.sub(1), 'new');
  assert.equal(t.sub(2), 'cur');
  assert.equal(t.base(2), row(9, null).base);
  assert.equal(t.file(2), `${row(9, null).base}:2,FRab`);
  assert.equal(t.file(1), row(5, null).base);
});

test('flags and keywords come from the file name, keyword names from the map', () => {
  const t = table([row(1, '2,S'), row(2, '2,FRab'), row(3, '2,DTc,extra'), row(4, '2,Sz')]);
  assert.deepEqual([...t.suffix(0).flags], ['\\Seen']);
  assert.deepEqual([...t.suffix(1).flags].sort(), ['\\Answered', '\\Flagged']);
  assert.deepEqual(t.suffix(1).keywords, ['$Forwarded', 'Work']);
  assert.deepEqual(t.suffix(1).keywordIdx, [0, 1]);
  assert.deepEqual([...t.suffix(2).flags].sort(), ['\\Deleted', '\\Draft']);
  assert.deepEqual(t.suffix(2).keywords, ['Later']);
  assert.equal(t.suffix(2).extra, ',extra');
  assert.deepEqual(t.suffix(3).keywords, ['unknown-25']);
  assert.equal(t.firstRow('\\Seen', false), 1);
  assert.equal(t.firstRow('\\Seen', true), 0);
  assert.equal(t.count('\\Seen', true), 2);
  assert.equal(t.count('\\Deleted', true), 1);
  assert.deepEqual(t.keywordOrder(), ['$Forwarded', 'Work', 'Later', 'unknown-25']);
});

test('rows with the same suffix share its parsed flags', () => {
  const t = table([row(1, '2,S'), row(2, '2,S'), row(3, '2,FS')]);
  assert.equal(t.suffix(0), t.suffix(1));
  assert.notEqual(t.suffix(0), t.suffix(2));
});

test('add refuses a UID not above the last, and a file that is not a name of its base', () => {
  const t = table([row(5, '2,S')]);
  assert.throws(() => t.add(row(5, '2,')), RangeError);
  assert.throws(() => t.add(row(4, '2,')), RangeError);
  assert.throws(() => t.add({ ...row(6, '2,'), file: 'other:2,S' }), RangeError);
  assert.equal(t.length, 1);
});

test('a rename changes flags and new/cur, keeps the base; values can be updated', () => {
  const t = table([row(1, null), row(2, '2,S')]);
  t.setFile(0, 'cur', `${t.base(0)}:2,RSa`);
  assert.equal(t.sub(0), 'cur');
  assert.deepEqual([...t.suffix(0).flags].sort(), ['\\Answered', '\\Seen']);
  assert.deepEqual(t.suffix(0).keywords, ['$Forwarded']);
  assert.throws(() => t.setFile(0, 'cur', 'foreign:2,S'), RangeError);
  t.setModseq(1, 99); t.setChanged(1, 4); t.setSize(1, 5); t.setVsize(1, undefined); t.setRecent(1, true);
  assert.equal(t.modseq(1), 99);
  assert.equal(t.changed(1), 4);
  assert.equal(t.size(1), 5);
  assert.equal(t.vsize(1), undefined);
  assert.equal(t.recent(1), true);
  assert.equal(t.sub(1), 'cur', 'the \\Recent bit leaves new/cur alone');
});

test('expunge removes rows in place, keeps the order and the values of the others, snapshots what left', () => {
  const t = table([1, 2, 3, 4, 5, 6].map((u) => row(u, u % 2 ? '2,S' : '2,F', { modseq: u * 10 })));
  const gone = t.remove(new Set([2, 5, 77]));
  assert.equal(t.length, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => t.uid(i)), [1, 3, 4, 6]);
  assert.deepEqual([0, 1, 2, 3].map((i) => t.modseq(i)), [10, 30, 40, 60]);
  assert.deepEqual([0, 1, 2, 3].map((i) => [...t.suffix(i).flags][0]), ['\\Seen', '\\Seen', '\\Flagged', '\\Flagged']);
  assert.equal(t.file(2), `${row(4, null).base}:2,F`);
  assert.equal(t.rowOf(5), -1);
  assert.equal(t.rowOf(6), 3);
  assert.deepEqual(gone.map((m) => [m.uid, m.modseq, m.file]), [[2, 20, `${row(2, null).base}:2,F`], [5, 50, `${row(5, null).base}:2,S`]]);
  // the table goes on growing after an expunge
  t.add(row(7, '2,'));
  assert.equal(t.rowOf(7), 4);
});

test('a view follows the current table, then the snapshot of a removed message', () => {
  const removed = new Map<number, MaildirMessage>();
  const owner: TableOwner & { table: MessageTable } = { table: table([row(1, '2,S'), row(2, '2,F')]), removedMessage: (u) => removed.get(u) };
  const v = new MessageRef(owner, 2);
  assert.deepEqual([...v.flags], ['\\Flagged']);
  // a sync builds a new table: the view reads it
  const next = table([row(2, '2,FS', { modseq: 5 }), row(3, '2,')]);
  owner.table = next;
  assert.deepEqual([...v.flags].sort(), ['\\Flagged', '\\Seen']);
  v.modseq = 8;
  assert.equal(next.modseq(0), 8, 'writes go to the row');
  v.size = 1234;
  assert.equal(next.size(0), 1234);
  // expunged: the snapshot
  for (const m of next.remove(new Set([2]))) removed.set(m.uid, m);
  assert.equal(v.modseq, 8);
  assert.equal(v.file, `${row(2, null).base}:2,FS`);
  assert.equal(new MessageRef(owner, 42).flags.size, 0, 'a message never known reads as empty');
});

test('MODSEQ records: set, replace, delete, in insertion order, values copied', () => {
  const e = new ModseqEntries();
  for (let u = 1; u <= 40; u++) e.set(u, { sig: u % 2 ? 'S' : 'FS', modseq: 100 + u, at: u });
  assert.equal(e.size, 40);
  assert.deepEqual(e.get(7), { sig: 'S', modseq: 107, at: 7 });
  e.set(7, { sig: 'RS', modseq: 500, at: 41 });
  assert.deepEqual(e.get(7), { sig: 'RS', modseq: 500, at: 41 });
  assert.equal(e.delete(3), true);
  assert.equal(e.delete(3), false);
  assert.equal(e.has(3), false);
  e.set(99, { sig: '', modseq: 1, at: 0 }); // takes the freed slot
  assert.deepEqual(e.get(99), { sig: '', modseq: 1, at: 0 });
  assert.deepEqual(e.get(4), { sig: 'FS', modseq: 104, at: 4 }, 'a reused slot leaves the others alone');
  const order = [...e].map(([u]) => u);
  assert.deepEqual(order.slice(0, 4), [1, 2, 4, 5]);
  assert.equal(order[order.length - 1], 99);
  const got = e.get(5)!;
  got.modseq = 0;
  assert.equal(e.get(5)!.modseq, 105, 'get() is a copy');
  e.clear();
  assert.equal(e.size, 0);
  assert.equal(e.get(1), undefined);
});
