// Package migrations embeds the SQL migrations of intake's Postgres schema
// ("intake"), applied with goose by pgdb.Migrate at start.
package migrations

import "embed"

// FS holds the migrations, NNNNN_name.sql, in goose format.
//
//go:embed *.sql
var FS embed.FS
