/**
 * doveadm's output formatters (-f flow|tab|table|pager|json), so scripts that
 * parse doveadm output keep working. Follows doveadm-print-{flow,tab,table,
 * pager,json}.c of Dovecot 2.3: a command declares its columns (headers), then
 * emits values in row order; the formatter decides the layout.
 */
export type FormatterName = 'flow' | 'tab' | 'table' | 'pager' | 'json';
export const FORMATTERS: readonly FormatterName[] = ['flow', 'tab', 'table', 'pager', 'json'];

export interface Header {
  key: string;
  title?: string;
  /** doveadm DOVEADM_PRINT_HEADER_FLAG_HIDE_TITLE */
  hideTitle?: boolean;
  /** DOVEADM_PRINT_HEADER_FLAG_RIGHT_JUSTIFY (table) */
  right?: boolean;
  /** DOVEADM_PRINT_HEADER_FLAG_EXPAND (table: takes the remaining width) */
  expand?: boolean;
  /** json: print as a number */
  number?: boolean;
  /**
   * A value doveadm writes with doveadm_print_stream() (message text, hdr,
   * body): pager prints `key:` on a line of its own and no newline after the
   * value, tab ends it with an extra tab — byte-compatible quirks scripts see.
   */
  stream?: boolean;
  /** table: minimum column width (doveadm's check-mark column is 2 wide). */
  minWidth?: number;
}

export interface Output { write(s: string | Buffer): void }

export class Printer {
  private headers: Header[] = [];
  private row: (string | Buffer)[] = [];
  private rows: (string | Buffer)[][] = [];
  private rowCount = 0;
  private headerPrinted = false;
  /**
   * table: column widths from the titles and the first row only, as doveadm
   * lays out a command that flushes after every row (who: later, longer
   * values overflow their column).
   */
  widthsFromFirstRow = false;

  constructor(readonly format: FormatterName, private readonly out: Output) {}

  header(h: Header | string): void {
    this.headers.push(typeof h === 'string' ? { key: h } : h);
  }

  /** Emit the next value; a row is complete after one value per header. */
  value(v: string | Buffer | number): void {
    this.row.push(typeof v === 'number' ? String(v) : v);
    if (this.row.length === this.headers.length) {
      this.emitRow(this.row);
      this.row = [];
    }
  }

  private title(h: Header): string { return h.title ?? h.key; }

  private emitRow(row: (string | Buffer)[]): void {
    const hs = this.headers;
    switch (this.format) {
      case 'flow': {
        const parts: (string | Buffer)[] = [];
        row.forEach((v, i) => {
          if (i > 0) parts.push(' ');
          if (!hs[i].hideTitle) parts.push(`${this.title(hs[i])}=`);
          parts.push(v);
        });
        parts.push('\n');
        for (const p of parts) this.out.write(p);
        break;
      }
      case 'tab': {
        if (!this.headerPrinted) {
          this.headerPrinted = true;
          this.out.write(hs.map((h) => this.title(h)).join('\t') + '\n'); // hideTitle is for the other formats
        }
        row.forEach((v, i) => {
          if (hs[i].stream) {
            // stream chunks are preceded by a tab past column 0, and the end of the stream prints an empty value
            if (i > 0 && v.length) this.out.write('\t');
            this.out.write(v);
            if (i > 0) this.out.write('\t');
            return;
          }
          if (i > 0) this.out.write('\t');
          this.out.write(v);
        });
        this.out.write('\n');
        break;
      }
      case 'pager': {
        // doveadm writes the form feed from its print(), not print_stream()
        if (this.rowCount > 0 && !hs[0]?.stream) this.out.write('\f\n');
        row.forEach((v, i) => {
          if (hs[i].stream) {
            this.out.write(`${this.title(hs[i])}:\n`);
            this.out.write(v);
            return;
          }
          if (!hs[i].hideTitle) this.out.write(`${this.title(hs[i])}: `);
          this.out.write(v);
          const s = typeof v === 'string' ? v : v.toString('latin1');
          if (!s.endsWith('\n')) this.out.write('\n');
        });
        break;
      }
      case 'table':
      case 'json':
        this.rows.push(row);
        break;
    }
    this.rowCount++;
  }

  /** Flush buffered formats (table, json). Call once at the end of a command. */
  flush(): void {
    const hs = this.headers;
    if (this.format === 'tab' && !this.headerPrinted) {
      // doveadm prints the title row even when there is no row to follow (and, like
      // doveadm-print-tab.c, even when every header is marked to hide its title).
      this.headerPrinted = true;
      this.out.write(hs.map((h) => this.title(h)).join('\t') + '\n');
    }
    if (this.format === 'table') {
      // doveadm-print-table: widths from titles and values, the last column
      // takes half the room left on an 80-column line, every cell is padded
      // and followed by one space (the last one column wider instead).
      const str = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('utf8'));
      const len = (v: string) => [...v].length;
      const sized = this.widthsFromFirstRow ? this.rows.slice(0, 1) : this.rows;
      const widths = hs.map((h, i) => Math.max(h.minWidth ?? 0, len(this.title(h)), ...sized.map((r) => len(str(r[i])))));
      const sum = widths.reduce((a, b) => a + b, 0);
      const room = 80 - sum - hs.length - 1;
      // the first EXPAND column takes the room instead, when it is not the last (doveadm who -1's username)
      const expandAt = hs.findIndex((h) => h.expand);
      const grow = expandAt >= 0 && expandAt < hs.length - 1 ? expandAt : -1;
      if (grow >= 0 && room + 2 > 0) widths[grow] += Math.floor((room + 2) / 2);
      else if (room > 0 && widths.length) widths[widths.length - 1] += Math.floor(room / 2);
      const pad = (c: string, w: number, right?: boolean) => (right ? ' '.repeat(Math.max(0, w - len(c))) + c : c + ' '.repeat(Math.max(0, w - len(c))));
      // doveadm separates cells by one space; its last column is one wider than ours and has no
      // separator after it, which only shows when that column is right-justified (quota get's %)
      const last = hs.length - 1;
      const line = (cells: string[]) => cells.map((c, i) => (i === last ? pad(c, widths[i] + (grow >= 0 ? 0 : 1), hs[i].right) : pad(c, widths[i], hs[i].right) + ' ')).join('') + '\n';
      if (!hs.every((h) => h.hideTitle)) this.out.write(line(hs.map((h) => this.title(h))));
      for (const r of this.rows) this.out.write(line(r.map(str)));
    } else if (this.format === 'json') {
      const objs = this.rows.map((r) => {
        const o: Record<string, string | number> = {};
        r.forEach((v, i) => {
          const s = typeof v === 'string' ? v : v.toString('utf8');
          o[hs[i].key] = hs[i].number && /^\d+$/.test(s) ? Number(s) : s;
        });
        return o;
      });
      this.out.write(JSON.stringify(objs)); // doveadm ends JSON output without a newline
    }
    this.rows = [];
  }
}
