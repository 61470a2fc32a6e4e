/**
 * Dovecot 2.3's main configuration parser (config-parser.c): statements from
 * lexer.ts assembled into per-filter settings trees (tree.ts), with
 * `!include`/`!include_try` (include.ts), `<file` values, `$setting`
 * snapshots, section merging, filters, value validation and Dovecot's
 * warnings. An unknown setting or section is fatal with Dovecot's text
 * (`Unknown setting: service { foo`, the enclosing sections' names first), as
 * doveconf refuses it: a misspelled setting must never fall back to its
 * default silently. Settings Dovecot knows but Sealmail does not honour are
 * warned about elsewhere (settings.ts), by name.
 */
import { globConfigFiles, readConfigFileSync } from './privileged-files.js';
import { ConfigError, type Origin } from './errors.js';
import { LineLexer, type Statement } from './lexer.js';
import { globInclude, relativeTo } from './include.js';
import { compareFilters, filterKey, Node, type Filter, type FilterSpec } from './tree.js';
import {
  defaultFor, ENUMS, FILTER_TYPES, FREE_FORM_SECTIONS, isAuthSetting, isKnownKey, NAMESPACE_TYPES,
  SECTION_PARENTS, settingType,
} from './known-settings.js';
import { normalizeValue, parseSize, parseTime } from './values.js';

export interface ParseOptions {
  /**
   * Expand every `$setting` (the running server, `doveconf -x`). Without it
   * only self-references (`key = $key …`) are expanded, as `doveconf -n`
   * prints them.
   */
  expandValues?: boolean;
  /** Read `<file` values (service start); otherwise keep the path. */
  readValueFiles?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ParsedConfig {
  path: string;
  /** Global filter first, then the others in Dovecot's order (least specific first). */
  filters: Filter[];
  warnings: string[];
}

const LIST_SECTIONS = new Set(['passdb', 'userdb', 'namespace']);

/**
 * The enclosing sections as config-parser.c's get_setting_full_path() writes
 * them in errors: each section's key followed by " { ", filters left out.
 */
function sectionPath(types: readonly string[]): string {
  return types.map((t) => `${t} { `).join('');
}

interface Frame {
  filter: Filter;
  node: Node;
  /** section types from the filter root down to node */
  types: string[];
  origin: Origin;
  isFilter: boolean;
}

class Parser {
  private readonly filters = new Map<string, Filter>();
  private readonly warnings: string[] = [];
  private readonly includeStack: string[] = [];
  private readonly stack: Frame[] = [];
  private counter = 0;

  constructor(private readonly opts: ParseOptions) {
    const global: Filter = { spec: {}, root: new Node(), origin: { file: '', line: 0 } };
    this.filters.set(filterKey({}), global);
    this.stack.push({ filter: global, node: global.root, types: [], origin: global.origin, isFilter: true });
  }

  parseFile(path: string, origin?: Origin): void {
    if (this.includeStack.includes(path)) throw new ConfigError(origin!.file, origin!.line, `Recursive include file: ${path}`);
    let text: string;
    try {
      text = readConfigFileSync(path);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = `open(${path}) failed: ${err.code === 'ENOENT' ? 'No such file or directory' : err.code === 'EACCES' ? 'Permission denied' : err.message}`;
      if (origin) throw new ConfigError(origin.file, origin.line, why);
      throw new ConfigError(path, 0, why);
    }
    this.includeStack.push(path);

    const lexer = new LineLexer();
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    lines.forEach((raw, i) => {
      const here: Origin = { file: path, line: i + 1 };
      const st = lexer.feed(raw, (w) => this.warnings.push(`Configuration file ${path} line ${i + 1}: ${w}`));
      this.statement(st, here);
    });
    if (this.includeStack.length === 1 && this.stack.length > 1) {
      const open = this.stack[this.stack.length - 1].origin;
      throw new ConfigError(path, 0, `Missing '}' (section started at ${open.file}:${open.line})`);
    }
    this.includeStack.pop();
  }

  private get top(): Frame { return this.stack[this.stack.length - 1]; }

  private statement(st: Statement, at: Origin): void {
    switch (st.kind) {
      case 'skip':
      case 'continue':
        return;
      case 'error':
        throw new ConfigError(at.file, at.line, st.reason);
      case 'end':
        if (this.stack.length <= 1) throw new ConfigError(at.file, at.line, "Unexpected '}'");
        this.stack.pop();
        return;
      case 'include': {
        const pattern = relativeTo(at.file, st.pattern);
        const files = globConfigFiles(pattern, globInclude);
        if (files.length === 0) {
          if (st.tryOnly) return;
          throw new ConfigError(at.file, at.line, 'No matches');
        }
        for (const f of files) {
          if (st.tryOnly) {
            try { readConfigFileSync(f); } catch { continue; }
          }
          this.parseFile(f, at);
        }
        return;
      }
      case 'section':
        this.openSection(st.type, st.name, at);
        return;
      case 'keyvalue':
        this.set(st.key, st.value, at, false);
        return;
      case 'keyvariable':
        this.set(st.key, this.expand(st.key, st.value, at), at, false);
        return;
      case 'keyfile': {
        const path = relativeTo(at.file, st.path);
        if (!this.opts.readValueFiles) { this.set(st.key, path, at, true, st.path); return; }
        let content: string;
        try {
          content = readConfigFileSync(path);
        } catch (e) {
          const err = e as NodeJS.ErrnoException;
          const why = err.code === 'ENOENT' ? 'No such file or directory' : err.code === 'EACCES' ? 'Permission denied' : err.message;
          throw new ConfigError(at.file, at.line, `${st.key}: Can't open file ${path}: ${why}`);
        }
        this.set(st.key, content, at, true, st.path);
        return;
      }
    }
  }

  private openSection(type: string, name: string, at: Origin): void {
    const top = this.top;
    if (FILTER_TYPES.has(type) && top.isFilter) {
      if (!name) throw new ConfigError(at.file, at.line, `${type} must have a name`);
      const spec: FilterSpec = { ...top.filter.spec };
      if (type === 'protocol') spec.protocol = name;
      else if (type === 'local') spec.local = name;
      else if (type === 'remote') spec.remote = name;
      else spec.localName = name;
      const k = filterKey(spec);
      let f = this.filters.get(k);
      if (!f) {
        f = { spec, root: new Node(), origin: at };
        this.filters.set(k, f);
      }
      this.stack.push({ filter: f, node: f.root, types: [], origin: at, isFilter: true });
      return;
    }
    const parentType = top.types[top.types.length - 1] ?? '';
    const allowed = SECTION_PARENTS[type];
    if (!allowed || !allowed.includes(parentType)) {
      if (!(parentType && FREE_FORM_SECTIONS.has(parentType))) {
        // config-parser.c pushes the section before checking its key, so the
        // path ends with the section's own name twice ("servce { servce").
        throw new ConfigError(at.file, at.line, `Unknown setting: ${sectionPath([...top.types, type])}${type}`);
      }
    }
    if (type === 'service' && !name) throw new ConfigError(at.file, at.line, 'service must have a name');
    // Unnamed list sections (passdb {, userdb {, namespace {) are new entries
    // each time; other sections (plugin {) are one section however often opened.
    const id = name || (LIST_SECTIONS.has(type) ? `\u0000${this.counter++}` : '');
    if (name && LIST_SECTIONS.has(type) && type !== 'namespace' && top.node.sections.has(`${type}/${id}`)) {
      // Named auth databases are unique: Dovecot refuses to open one twice.
      throw new ConfigError(at.file, at.line, `${type}/${name} already exists`);
    }
    const node = top.node.section(type, id, name, at);
    this.stack.push({ filter: top.filter, node, types: [...top.types, type], origin: at, isFilter: false });
  }

  private set(key: string, value: string, at: Origin, fromFile: boolean, written?: string): void {
    if (key.startsWith('mail_cache_compress_')) {
      const renamed = 'mail_cache_purge_' + key.slice('mail_cache_compress_'.length);
      this.warnings.push(`Obsolete setting in ${at.file}:${at.line}: ${key} has been renamed to ${renamed}`);
      key = renamed;
    }
    const top = this.top;
    const { types, node, filter } = top;
    const inFilter = filter.spec.local !== undefined || filter.spec.remote !== undefined;
    if (types.length === 0 && inFilter && isAuthSetting(key)) {
      throw new ConfigError(at.file, at.line, `Auth settings not supported inside local/remote blocks: ${key}`);
    }
    if (!isKnownKey(types, key)) {
      throw new ConfigError(at.file, at.line, `Unknown setting: ${sectionPath(types)}${key}`);
    } else if (!fromFile) {
      this.validate(types, key, value, at);
      value = normalizeValue(settingType(types, key), value);
    }
    if (types.length === 0 && filterKey(filter.spec) === filterKey({})) {
      for (const f of this.filters.values()) {
        const e = f === filter ? undefined : f.root.settings.get(key);
        if (e) {
          this.warnings.push(`${at.file} line ${at.line}: Global setting ${key} won't change the setting inside an earlier filter at ${e.origin.file} line ${e.origin.line} (if this is intentional, avoid this warning by moving the global setting before ${e.origin.file} line ${e.origin.line})`);
          break;
        }
      }
    }
    node.settings.set(key, { value, origin: at, fromFile, written });
  }

  private validate(types: string[], key: string, value: string, at: Origin): void {
    const t = settingType(types, key);
    const fail = (why: string) => { throw new ConfigError(at.file, at.line, why); };
    switch (t) {
      case 'bool':
        if (!/^(yes|no)$/i.test(value)) fail(`Invalid boolean value: ${value} (use yes or no)`);
        break;
      case 'uint':
        if (!/^\d+$/.test(value)) fail(`Invalid number ${value}: Not a valid number`);
        break;
      case 'octal':
        if (!/^[0-7]+$/.test(value)) fail(`Invalid number ${value}: Not a valid number`);
        break;
      case 'size': {
        const r = parseSize(value);
        if (typeof r === 'string') fail(r);
        break;
      }
      case 'time': {
        const r = parseTime(value, false);
        if (typeof r === 'string') fail(r);
        break;
      }
      case 'enum': {
        const allowed = key === 'type' ? NAMESPACE_TYPES : ENUMS[key];
        if (allowed && !allowed.includes(value)) fail(`Invalid value: ${value}`);
        break;
      }
      default:
        break;
    }
  }

  /** Current value of a setting as seen from the statement being parsed. */
  private lookup(name: string): string | undefined {
    const top = this.top;
    // Same section path in the current filter, then in less specific filters, then defaults.
    const own = top.node.settings.get(name);
    if (own) return own.value;
    for (let i = this.stack.length - 2; i >= 0; i--) {
      const fr = this.stack[i];
      const v = fr.node.settings.get(name);
      if (v) return v.value;
    }
    if (top.types.length === 0) {
      const parents = [...this.filters.values()]
        .filter((f) => f !== top.filter && isParentSpec(f.spec, top.filter.spec))
        .sort((a, b) => compareFilters(b.spec, a.spec));
      for (const f of parents) {
        const v = f.root.settings.get(name);
        if (v) return v.value;
      }
    }
    return defaultFor(top.types, name) ?? defaultFor([], name);
  }

  /** `$name` tokens of a value (split on spaces), as config_write_keyvariable does. */
  private expand(key: string, value: string, at: Origin): string {
    const env = this.opts.env ?? process.env;
    return value.split(' ').map((tok) => {
      if (!tok.startsWith('$')) return tok;
      const name = tok.slice(1);
      const selfRef = name === key;
      if (!this.opts.expandValues && !selfRef) return tok;
      if (name.startsWith('ENV:')) return env[name.slice(4)] ?? '';
      const v = this.lookup(name);
      if (v === undefined) throw new ConfigError(at.file, at.line, `Unknown variable: $${name}`);
      return v;
    }).join(' ');
  }

  /** Checks Dovecot makes once the whole tree is read (errors carry no line). */
  private finalChecks(path: string): void {
    for (const f of this.filters.values()) {
      for (const ns of f.root.sectionsOf('namespace')) {
        for (const mb of ns.sectionsOf('mailbox')) {
          for (const u of (mb.get('special_use') ?? '').split(/\s+/).filter(Boolean)) {
            if (!/^\\(All|Archive|Drafts|Flagged|Junk|Sent|Trash|Important)$/.test(u)) {
              throw new ConfigError(path, 0, `mailbox ${mb.name}: unknown special_use: ${u}`);
            }
          }
        }
      }
    }
  }

  result(path: string): ParsedConfig {
    this.finalChecks(path);
    const [global, ...rest] = [...this.filters.values()];
    rest.sort((a, b) => compareFilters(a.spec, b.spec));
    return { path, filters: [global, ...rest], warnings: this.warnings };
  }
}

/** Is `p` a (non-strict) generalisation of `c`? (every condition of p is in c) */
export function isParentSpec(p: FilterSpec, c: FilterSpec): boolean {
  return (p.protocol === undefined || p.protocol === c.protocol)
    && (p.local === undefined || p.local === c.local)
    && (p.remote === undefined || p.remote === c.remote)
    && (p.localName === undefined || p.localName === c.localName);
}

/** Parse a Dovecot configuration file and everything it includes. */
export function parseConfigFile(path: string, opts: ParseOptions = {}): ParsedConfig {
  const p = new Parser(opts);
  p.parseFile(path);
  return p.result(path);
}
