module github.com/opsdesk/opsdesk/api

go 1.26.8
