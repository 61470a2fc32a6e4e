-- ISPmail schema (workaround.org, Debian 12 edition) for SQLite, plus the
-- mail-crypt chapter's per-user "crypt" switch (mail_crypt_save_version: 0 or 2).
-- Used by the embedded default (npm start) through sql.js.
CREATE TABLE IF NOT EXISTS virtual_domains (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS virtual_users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  domain_id INTEGER NOT NULL REFERENCES virtual_domains(id) ON DELETE CASCADE,
  email TEXT NOT NULL UNIQUE,
  -- Dovecot hash with its {SCHEME} prefix, e.g. {BLF-CRYPT}$2y$...
  password TEXT NOT NULL,
  -- bytes; 0 = unlimited (user_query turns it into quota_rule = *:bytes=N)
  quota INTEGER NOT NULL DEFAULT 0,
  -- mail_crypt_save_version: 0 = store plain, 2 = encrypt
  crypt INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS virtual_aliases (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  domain_id INTEGER NOT NULL REFERENCES virtual_domains(id) ON DELETE CASCADE,
  source TEXT NOT NULL,
  destination TEXT NOT NULL
);
