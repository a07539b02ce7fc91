package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoBinaries means no PostgreSQL server binaries were found on the machine.
var ErrNoBinaries = errors.New("no PostgreSQL found: set DATABASE_URL, start a server on 127.0.0.1:5432, " +
	"or install the PostgreSQL binaries (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; " +
	"macOS: brew install postgresql@16) and run again")

// cluster is a private PostgreSQL cluster run by this process.
type cluster struct {
	bin     string // directory holding initdb, pg_ctl and postgres
	dir     string // PGDATA
	version string // major version, e.g. "15"
	port    int
	cred    *syscall.Credential // the postgres OS user when we run as root
	// started is false for a server found running on the directory: we stop
	// only what we started, as it may belong to another opsdesk process.
	started bool
}

func (c *cluster) url(db string) string {
	return pgURL("postgres", "127.0.0.1:"+strconv.Itoa(c.port), db)
}

// startCluster initialises the cluster directory if it is new and starts the
// server on loopback. An existing directory is reused, so data survives
// restarts of the binary.
func startCluster(ctx context.Context, opts Options) (*cluster, error) {
	dir, err := filepath.Abs(opts.ClusterDir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	want := ""
	if b, err := os.ReadFile(filepath.Join(dir, "PG_VERSION")); err == nil {
		want = strings.TrimSpace(string(b))
	}
	bin, version, err := findBinaries(opts.BinDirs, want)
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, version: version}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres OS user.
		if c.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if want == "" {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if port, ok := c.runningPort(ctx); ok {
		// Another opsdesk process runs it, or one that was killed left it
		// running: use it, and leave it running.
		c.port = port
		opts.Logger.Info("using the private postgres already running; stop it with pg_ctl stop -D "+dir, "dir", dir, "port", port)
		return c, nil
	}
	c.port = opts.Port
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Options on the command line, not in postgresql.conf, so a reused
	// cluster can move to another free port.
	serverOpts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", c.port, quoteOpt(dir))
	opts.Logger.Info("starting private postgres", "dir", dir, "port", c.port, "bin", bin)
	if out, err := c.run(ctx, "pg_ctl", "start", "-D", dir, "-w", "-t", "60", "-s",
		"-l", filepath.Join(dir, "server.log"), "-o", serverOpts); err != nil {
		return nil, fmt.Errorf("start private postgres in %s: %w\n%s\n(see %s)", dir, err, out, filepath.Join(dir, "server.log"))
	}
	c.started = true
	return c, nil
}

// initdb creates a fresh cluster that trusts local connections only: the
// server listens on 127.0.0.1 and its socket sits inside the data directory.
func (c *cluster) initdb(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.dir, err)
	}
	if c.cred != nil {
		// initdb runs as postgres and cannot create the directory in a
		// root-owned parent, so create it here and hand it over.
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", c.dir, err)
		}
	}
	out, err := c.run(ctx, "initdb", "-D", c.dir, "-U", "postgres", "--auth-local=trust", "--auth-host=trust",
		"-E", "UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		hint := ""
		if c.cred != nil {
			hint = "\n(the postgres OS user must be able to reach " + c.dir + ": every parent directory needs o+x)"
		}
		return fmt.Errorf("initdb %s: %w\n%s%s", c.dir, err, out, hint)
	}
	return nil
}

// runningPort reports the port of a server already running on the cluster
// directory.
func (c *cluster) runningPort(ctx context.Context) (int, bool) {
	if _, err := c.run(ctx, "pg_ctl", "status", "-D", c.dir); err != nil {
		return 0, false
	}
	// postmaster.pid, line 4: the port (PostgreSQL docs, "Database File Layout").
	b, err := os.ReadFile(filepath.Join(c.dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

// stop shuts the server down: fast mode rolls back open transactions and
// disconnects clients, then checkpoints, so nothing committed is lost.
func (c *cluster) stop(ctx context.Context) error {
	if !c.started {
		return nil
	}
	if out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.dir, "-m", "fast", "-w", "-t", "60", "-s"); err != nil {
		return fmt.Errorf("stop private postgres in %s: %w\n%s", c.dir, err, out)
	}
	return nil
}

// run runs one of the cluster's binaries, as the postgres OS user when we are
// root, and returns its combined output.
func (c *cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	// A cwd the postgres user cannot enter makes the tools complain.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// pg_ctl start -l sends the server's output to the log file, so the
	// server does not hold these pipes open and Run returns.
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return strings.TrimSpace(buf.String()), err
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as another user, and there is no postgres OS user: %w "+
			"(run as a normal user, or create one: useradd --system postgres)", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// findBinaries returns the first directory holding initdb, pg_ctl and
// postgres, with their major version. Candidates, in order: dirs (when
// given), `pg_config --bindir`, PATH, then /usr/lib/postgresql/*/bin and the
// Homebrew locations, highest version first. When want is set (an existing
// cluster's PG_VERSION), only that major version will do.
func findBinaries(dirs []string, want string) (dir, version string, err error) {
	if len(dirs) == 0 {
		dirs = candidateDirs()
	}
	var found []string
	for _, d := range dirs {
		if !fileExists(filepath.Join(d, "initdb")) || !fileExists(filepath.Join(d, "pg_ctl")) || !fileExists(filepath.Join(d, "postgres")) {
			continue
		}
		v, err := majorVersion(filepath.Join(d, "pg_ctl"))
		if err != nil {
			continue
		}
		if want == "" || v == want {
			return d, v, nil
		}
		found = append(found, d+" ("+v+")")
	}
	if len(found) > 0 {
		return "", "", fmt.Errorf("the private cluster was made by PostgreSQL %s, but only these binaries were found: %s "+
			"(install PostgreSQL %s, or move the cluster directory away to start afresh)", want, strings.Join(found, ", "), want)
	}
	return "", "", ErrNoBinaries
}

func candidateDirs() []string {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
		// Debian links initdb into /usr/local/bin or /usr/bin; the real
		// directory also holds postgres.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin", "/usr/local/opt/postgresql@*/bin"} {
		matches, _ := filepath.Glob(pattern)
		sort.Slice(matches, func(i, j int) bool { return versionIn(matches[i]) > versionIn(matches[j]) })
		dirs = append(dirs, matches...)
	}
	return dirs
}

var digitsRE = regexp.MustCompile(`\d+`)

// versionIn is the first number in a path such as /usr/lib/postgresql/15/bin.
func versionIn(path string) int {
	n, _ := strconv.Atoi(digitsRE.FindString(path))
	return n
}

// majorVersion asks pg_ctl for its version: "pg_ctl (PostgreSQL) 15.19" -> "15".
func majorVersion(pgCtl string) (string, error) {
	out, err := exec.Command(pgCtl, "--version").Output()
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`\(PostgreSQL\) (\d+)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unexpected version output %q", out)
	}
	return string(m[1]), nil
}

// quoteOpt quotes a path for pg_ctl -o, which passes it through a shell.
func quoteOpt(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func isDuplicateDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P04"
}
