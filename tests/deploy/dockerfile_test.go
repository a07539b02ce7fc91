// Package deploy_test checks the deployment files (deploy/, docker-compose.yml,
// k8s/) with the parsers of the tools that read them, strictly, since no
// Docker engine or cluster runs here: a typo in a key, a missing probe or a
// path that does not exist fails here rather than at deploy time.
package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// root is the repository root, seen from tests/deploy.
const root = "../.."

// knownTargets are the --target values `opsdesk run` accepts (the modules
// registered in cmd/opsdesk). Add each new service here with its module.
var knownTargets = []string{"all", "identity", "intake"}

// binaries are the programs the image ships, by path in the image, with the
// package each is built from. Add each new service's own binary here.
var binaries = map[string]string{
	"/opsdesk":  "./cmd/opsdesk",
	"/identity": "./services/identity/cmd/identity",
	"/intake":   "./services/intake/cmd/intake",
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, _, msg string, loc []parser.Range) {
		t.Errorf("lint %s at line %v: %s", rule, lineOf(loc), msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) != 2 {
		t.Fatalf("got %d stages, want 2 (build, final)", len(stages))
	}
	build, final := stages[0], stages[1]
	if build.Name != "build" || !strings.HasPrefix(build.BaseName, "golang:") {
		t.Errorf("first stage = %q FROM %q, want build FROM golang:...", build.Name, build.BaseName)
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/") || !strings.HasSuffix(final.BaseName, ":nonroot") {
		t.Errorf("final stage FROM %q, want a distroless :nonroot image", final.BaseName)
	}

	// The build compiles every binary from the workspace root, each from
	// its package into /out/<name>.
	var runs []string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			runs = append(runs, strings.Join(r.CmdLine, " "))
		}
	}
	for bin, pkg := range binaries {
		out := "-o /out" + bin + " " + pkg
		if !slices.ContainsFunc(runs, func(r string) bool { return strings.Contains(r, "go build") && strings.Contains(r, out) }) {
			t.Errorf("build stage does not go build %s (%q)", pkg, out)
		}
		if _, err := os.Stat(filepath.Join(root, pkg, "main.go")); err != nil {
			t.Errorf("binary %s: %v", bin, err)
		}
	}

	var user string
	var entrypoint, cmd []string
	copied := map[string]string{} // destination -> source, from the build stage
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form; distroless has no shell")
			}
			entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD in shell form; distroless has no shell")
			}
			cmd = c.CmdLine
		case *instructions.CopyCommand:
			if c.From == "build" {
				copied[c.DestPath] = strings.Join(c.SourcePaths, " ")
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				checkEnvName(t, "Dockerfile ENV", kv.Key)
			}
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage: distroless has no shell (%v)", c.CmdLine)
		}
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") {
		t.Errorf("final USER = %q, want a non-root user", user)
	}
	if !slices.Equal(entrypoint, []string{"/opsdesk"}) {
		t.Errorf("ENTRYPOINT = %q, want [/opsdesk]", entrypoint)
	}
	if !slices.Equal(cmd, []string{"run", "--target=all"}) {
		t.Errorf("CMD = %q, want [run --target=all]", cmd)
	}
	for bin := range binaries {
		if src, ok := copied[bin]; !ok || src != "/out"+bin {
			t.Errorf("final stage does not copy /out%s to %s from the build stage (got %q)", bin, bin, src)
		}
	}

	// The Dockerfile-specific ignore file keeps local data out of the context.
	ignore, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", ".data", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), p) {
			t.Errorf("Dockerfile.dockerignore does not exclude %s", p)
		}
	}
}

func lineOf(loc []parser.Range) string {
	if len(loc) == 0 {
		return "?"
	}
	return fmt.Sprint(loc[0].Start.Line)
}
