/** dovecot-compat.md's generated settings table must match the code's table. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withTable } from '../../scripts/gen-compat.js';
import { repoRoot } from '../helpers/paths.js';

test('dovecot-compat.md settings table is up to date (npm run gen:compat)', () => {
  const doc = readFileSync(join(repoRoot, 'dovecot-compat.md'), 'utf8');
  assert.equal(doc, withTable(doc));
  assert.match(doc, /^\| `auth_failure_delay` \| `2 secs` \| supported \|$/m);
  assert.match(doc, /^\| `imap_fetch_failure` \| `disconnect-immediately` \| accepted, no effect yet \(warns\) \|$/m);
  assert.match(doc, /^\| `lazy_expunge` \| refused \(does not start\) \| /m);
});
