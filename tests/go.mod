module github.com/opsdesk/opsdesk/tests

go 1.26.8
