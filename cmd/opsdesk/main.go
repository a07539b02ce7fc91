// Command opsdesk is the all-in-one OpsDesk binary: it runs every service in
// one process (run --target=all, the default), or any subset of them
// (--target=intake), and carries the operator commands.
//
//	opsdesk run [--target=all|intake,...] [flags]
//	opsdesk deadletters list [--consumer=NAME] [--limit=N]
//	opsdesk deadletters replay <seq>
//	opsdesk rebuild <projection>
//	opsdesk healthcheck [url]
//	opsdesk version
//
// Configuration comes from OPSDESK_* environment variables (plus
// DATABASE_URL and OTEL_*) and flags; see docs/configuration.md or
// `opsdesk run -h`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// SIGINT (Ctrl-C) and SIGTERM (Kubernetes, docker stop) cancel ctx:
	// every module stops in reverse dependency order.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(c.main(ctx, os.Args[1:]))
}

// cli is one invocation of the binary. Tests build their own, with their
// environment, output buffers and a listener on 127.0.0.1:0.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// listener, when set, is where `run` serves HTTP instead of
	// OPSDESK_HTTP_ADDR.
	listener net.Listener
}

// usageError is a mistake in the command line: exit code 2 and the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `usage: opsdesk <command> [arguments]

commands:
  run [--target=all|intake,...] [flags]   run services (all by default); -h lists every flag
  deadletters list [--consumer=NAME] [--limit=N]
                                          list events a consumer gave up on
  deadletters replay <seq>                re-run one dead letter; removed from the DLQ on success
  rebuild <projection>                    empty a read model and replay its stream into it
  healthcheck [url]                       exit 0 if url (default http://127.0.0.1:8080/readyz) answers 200
  version                                 print the version
`

// main runs the command in args and returns the process exit code.
func (c *cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = c.run(ctx, rest)
	case "deadletters":
		err = c.deadletters(ctx, rest)
	case "rebuild":
		err = c.rebuild(ctx, rest)
	case "healthcheck":
		err = c.healthcheck(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintln(c.stdout, "opsdesk", version)
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usage)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "opsdesk: %s\n\n%s", ue.msg, usage)
		return 2
	default:
		fmt.Fprintf(c.stderr, "opsdesk: %v\n", err)
		return 1
	}
}
