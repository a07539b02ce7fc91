// Package pgdb holds the Postgres mechanics shared by every service: the
// traced connection pool, per-service schemas with embedded migrations, and
// the tenant-scoped transaction helper that row-level security builds on.
package pgdb
