module github.com/opsdesk/opsdesk/services/intake

go 1.26.8
