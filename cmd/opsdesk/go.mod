module github.com/opsdesk/opsdesk/cmd/opsdesk

go 1.26.8
