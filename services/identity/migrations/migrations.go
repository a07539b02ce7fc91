// Package migrations embeds the identity schema's SQL migrations.
package migrations

import "embed"

// FS holds the goose migrations, applied by pgdb.Migrate.
//
//go:embed *.sql
var FS embed.FS
