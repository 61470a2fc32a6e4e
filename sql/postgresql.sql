-- ISPmail schema (workaround.org, Debian 12 edition) for PostgreSQL, plus the
-- mail-crypt chapter's per-user "crypt" switch (0 = plain, 2 = encrypt).
CREATE TABLE IF NOT EXISTS virtual_domains (
  id SERIAL PRIMARY KEY,
  name VARCHAR(50) NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS virtual_users (
  id SERIAL PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES virtual_domains(id) ON DELETE CASCADE,
  email VARCHAR(100) NOT NULL UNIQUE,
  password VARCHAR(150) NOT NULL,
  quota BIGINT NOT NULL DEFAULT 0,
  crypt INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS virtual_aliases (
  id SERIAL PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES virtual_domains(id) ON DELETE CASCADE,
  source VARCHAR(100) NOT NULL,
  destination VARCHAR(100) NOT NULL
);
