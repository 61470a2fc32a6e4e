/**
 * HTML to plain text as Dovecot 2.3's mail-html2text.c does it for the
 * message preview (RFC 8970 PREVIEW, message-snippet.c; no flags): tags
 * dropped, each closed tag leaving one space, comments, <script>, <style>
 * dropped, CDATA kept, named (HTML 4.01 + apos) and numeric (&#n; &#xn;)
 * character references decoded, an unknown one dropped and a broken one
 * (blank or more than 9 characters before its ';') losing only its '&';
 * text inside <blockquote> starts each tag's text with "\n>" so that the
 * snippet sees it as a quoted line. A construct cut by the end of the input
 * (a tag name, reference or closing tag not yet complete) is dropped, as
 * Dovecot leaves it waiting for more data.
 *
 * Input and output are JS strings of decoded text (Dovecot works on UTF-8
 * bytes; every decision is on ASCII characters, so the result is the same).
 */
import { HTML_ENTITIES } from './html-entities.js';

const enum State { Text, Tag, TagDq, TagDqEsc, TagSq, TagSqEsc, Comment, CommentEnd, Script, Style, Cdata }

const isWs = (c: string | undefined) => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const startsCi = (s: string, at: number, word: string) => s.slice(at, at + word.length).toLowerCase() === word;

export class Html2Text {
  private state = State.Text;
  private quoteLevel = 0;
  private addNewline = false;

  /**
   * Converts one piece of HTML. Dovecot feeds the converter block by block
   * and its "leave one space" rule looks only at the current block's
   * output; the whole decoded part is given here at once.
   */
  convert(data: string): string {
    let out = '';
    const addSpace = () => { if (out.length && !out.endsWith(' ') && !out.endsWith('\n')) out += ' '; };
    const n = data.length;
    for (let i = 0; i < n; i++) {
      const c = data[i];
      switch (this.state) {
        case State.Text:
          if (c === '<') {
            const r = this.tagName(data, i + 1);
            if (r === 0) return out;
            i += r - 1;
          } else if (c === '&') {
            const r = entity(data, i + 1);
            if (r === null) return out;
            out += r.text;
            i += r.skip - 1;
          } else out += c;
          break;
        case State.Tag:
          if (c === '"') this.state = State.TagDq;
          else if (c === "'") this.state = State.TagSq;
          else if (c === '>') {
            this.state = State.Text;
            if (this.quoteLevel > 0) out += '\n>';
            else if (this.addNewline) out += '\n';
            this.addNewline = false;
            addSpace();
          }
          break;
        case State.TagDq:
          if (c === '"') this.state = State.Tag;
          else if (c === '\\') this.state = State.TagDqEsc;
          break;
        case State.TagDqEsc: this.state = State.TagDq; break;
        case State.TagSq:
          if (c === "'") this.state = State.Tag;
          else if (c === '\\') this.state = State.TagSqEsc;
          break;
        case State.TagSqEsc: this.state = State.TagSq; break;
        case State.Comment:
          if (c === '-') {
            if (i + 1 === n) return out;
            if (data[i + 1] === '-') { this.state = State.CommentEnd; i++; }
          }
          break;
        case State.CommentEnd:
          if (c === '>') this.state = State.Text;
          else if (!isWs(c)) this.state = State.Comment;
          break;
        case State.Script:
        case State.Style: {
          if (c !== '<') break;
          const close = this.state === State.Script ? '</script>' : '</style>';
          const have = Math.min(n - i, close.length);
          if (startsCi(data, i, close.slice(0, have))) {
            if (have < close.length) return out;
            addSpace();
            this.state = State.Text;
            i += close.length - 1;
          }
          break;
        }
        case State.Cdata:
          if (c === ']') {
            const have = Math.min(n - i, 3);
            if (data.slice(i, i + have) === ']]>'.slice(0, have)) {
              if (have < 3) return out;
              this.state = State.Text;
              i += 2;
              break;
            }
          }
          out += c;
          break;
      }
    }
    return out;
  }

  /** After a '<' at `at`: how many characters the caller moves on (0: the name is not complete yet). */
  private tagName(d: string, at: number): number {
    const size = d.length - at;
    if (size >= 3 && d.startsWith('!--', at)) { this.state = State.Comment; return 4; }
    if (size >= 7 && startsCi(d, at, 'script') && (isWs(d[at + 6]) || d[at + 6] === '>')) { this.state = State.Script; return 8; }
    if (size >= 6 && startsCi(d, at, 'style') && (isWs(d[at + 5]) || d[at + 5] === '>')) { this.state = State.Style; return 7; }
    if (size >= 8 && startsCi(d, at, '![cdata[')) { this.state = State.Cdata; return 9; }
    if (size >= 11 && startsCi(d, at, 'blockquote') && (isWs(d[at + 10]) || d[at + 10] === '>')) {
      this.quoteLevel++;
      this.state = State.Tag;
      return 1;
    }
    if (this.quoteLevel > 0 && size >= 12 && startsCi(d, at, '/blockquote>')) {
      this.quoteLevel--;
      this.addNewline = true;
      this.state = State.Tag;
      return 1;
    }
    if (size < 12) {
      let i = 0;
      while (i < size && !isWs(d[at + i]) && d[at + i] !== '>') i++;
      if (i === size) return 0;
    }
    this.state = State.Tag;
    return 1;
  }
}

const DEC = /^[0-9]+$/;
const HEX = /^[0-9a-fA-F]+$/;

/** A character reference after its '&' at `at`: its text and how far the caller moves on; null when incomplete. */
function entity(d: string, at: number): { text: string; skip: number } | null {
  let i = 0;
  for (; at + i < d.length; i++) {
    // broken: the '&' alone is dropped
    if (isWs(d[at + i]) || i >= 10) return { text: '', skip: 1 };
    if (d[at + i] === ';') break;
  }
  if (at + i >= d.length) return null;
  const name = d.slice(at, at + i);
  let cp = HTML_ENTITIES.get(name);
  if (cp === undefined && name[0] === '#') {
    const n = name[1] === 'x' && HEX.test(name.slice(2)) ? parseInt(name.slice(2), 16) : DEC.test(name.slice(1)) ? Number(name.slice(1)) : NaN;
    if (n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff)) cp = n;
  }
  return { text: cp === undefined ? '' : String.fromCodePoint(cp), skip: i + 2 };
}
