package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/embedded"
)

// The memory phase measures a nats-server that runs alone in a child
// process (this same binary, re-executed with childEnv set), so the figure
// is the server's own memory, not polluted by the benchmark's clients,
// Postgres driver or HTTP stack.
const childEnv = "OPSDESK_BENCH_NATS_CHILD"

// memStats is what the child reports: its RSS as the server's varz sees it
// (server.Varz Mem) and its Go heap, both after a forced GC.
type memStats struct {
	RSS       int64  `json:"rss"`
	HeapInuse uint64 `json:"heap_inuse"`
	HeapAlloc uint64 `json:"heap_alloc"`
}

// natsChild runs the child when this process is one; it reports whether
// it was (and the caller must then return).
func natsChild() bool {
	dir := os.Getenv(childEnv)
	if dir == "" {
		return false
	}
	if err := serveChild(dir, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench nats child:", err)
		os.Exit(1)
	}
	return true
}

// serveChild starts the server, prints "ready <url>", then answers each
// "mem" line on in with a memStats JSON line, until in is closed.
func serveChild(dir string, in io.Reader, out io.Writer) error {
	srv, err := embedded.Start(embedded.Config{Dir: dir, Host: "127.0.0.1", Port: -1, Logger: quiet})
	if err != nil {
		return err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}()
	fmt.Fprintf(out, "ready %s\n", srv.ClientURL())
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if sc.Text() != "mem" {
			continue
		}
		runtime.GC()
		debug.FreeOSMemory() // return freed pages, so RSS reflects live memory
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		v, err := srv.Varz(nil)
		if err != nil {
			return fmt.Errorf("varz: %w", err)
		}
		b, _ := json.Marshal(memStats{RSS: v.Mem, HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc})
		fmt.Fprintf(out, "%s\n", b)
	}
	return sc.Err()
}

// MemoryResult is the nats-server's memory before and after creating
// Aggregates single-event ticket aggregates.
type MemoryResult struct {
	Aggregates int      `json:"aggregates"`
	Before     memStats `json:"before"`
	// After is measured once the server's caches settled (see settle).
	After memStats `json:"after"`
	// AfterImmediate is measured right after the last ack.
	AfterImmediate memStats `json:"after_immediate"`
	// RSSMiBPer100k and HeapMiBPer100k scale the growth to 100,000 aggregates.
	RSSMiBPer100k  float64 `json:"rss_mib_per_100k"`
	HeapMiBPer100k float64 `json:"heap_mib_per_100k"`
	// StoreMiBPer100k is the stream's size on disk per 100,000 aggregates.
	StoreMiBPer100k float64 `json:"store_mib_per_100k"`
	SettleSeconds   float64 `json:"settle_seconds"`
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	dir string
}

func startChild(ctx context.Context) (*child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find own executable: %w", err)
	}
	dir, err := os.MkdirTemp("", "opsdesk-bench-mem-*")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start nats child: %w", err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(outPipe), dir: dir}
	line, err := c.out.ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if err != nil || !ok {
		c.close()
		return nil, "", fmt.Errorf("nats child did not start (said %q): %v", line, err)
	}
	return c, url, nil
}

func (c *child) mem() (memStats, error) {
	if _, err := io.WriteString(c.in, "mem\n"); err != nil {
		return memStats{}, fmt.Errorf("ask nats child: %w", err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return memStats{}, fmt.Errorf("read nats child: %w", err)
	}
	var m memStats
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return memStats{}, fmt.Errorf("nats child said %q: %w", line, err)
	}
	return m, nil
}

func (c *child) close() {
	_ = c.in.Close() // the child shuts its server down on EOF
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill() // our own child, by its handle
		<-done
	}
	_ = os.RemoveAll(c.dir)
}

// memoryPhase creates n ticket aggregates (one TicketCreated each, published
// exactly as the event store appends them) in a TICKETS stream provisioned
// like intake's, on a nats-server in a child process, and reports its memory
// growth. Memory does not depend on the durability mode, so it runs once,
// in the default mode (sync always would only make the load slower).
func memoryPhase(ctx context.Context, n int, settleMax time.Duration) (MemoryResult, error) {
	c, url, err := startChild(ctx)
	if err != nil {
		return MemoryResult{}, err
	}
	defer c.close()
	nc, err := natsx.Connect(url, "bench-memory")
	if err != nil {
		return MemoryResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*publishWindow))
	if err != nil {
		return MemoryResult{}, err
	}
	stream, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{
		Name: ticketv1.Stream, Subjects: []string{ticketv1.Context + ".>"}, Replicas: 1,
	})
	if err != nil {
		return MemoryResult{}, err
	}
	res := MemoryResult{Aggregates: n}
	if res.Before, err = c.mem(); err != nil {
		return res, err
	}
	if err := publishEvents(ctx, js, n, nil); err != nil {
		return res, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("stream info: %w", err)
	}
	if info.State.Msgs != uint64(n) || info.State.NumSubjects != uint64(n) {
		return res, fmt.Errorf("stream holds %d messages on %d subjects, want %d each",
			info.State.Msgs, info.State.NumSubjects, n)
	}
	if res.AfterImmediate, err = c.mem(); err != nil {
		return res, err
	}
	// JetStream keeps recently written blocks cached and drops the caches
	// after a few seconds idle; poll until the heap stops shrinking, so
	// the figure is the steady per-aggregate cost, not write buffers.
	res.After = res.AfterImmediate
	start := time.Now()
	for time.Since(start) < settleMax && ctx.Err() == nil {
		time.Sleep(time.Second) // sampling a gauge at 1 Hz, not waiting for a condition
		m, err := c.mem()
		if err != nil {
			return res, err
		}
		shrank := float64(res.After.HeapInuse-min(m.HeapInuse, res.After.HeapInuse)) > 0.01*float64(res.After.HeapInuse)
		res.After = m
		if !shrank && time.Since(start) >= 3*time.Second {
			break
		}
	}
	res.SettleSeconds = time.Since(start).Seconds()
	scale := 100_000 / float64(n) / (1 << 20)
	res.RSSMiBPer100k = float64(res.After.RSS-res.Before.RSS) * scale
	res.HeapMiBPer100k = (float64(res.After.HeapInuse) - float64(res.Before.HeapInuse)) * scale
	res.StoreMiBPer100k = float64(info.State.Bytes) * scale
	return res, nil
}

// publishWindow is how many async publishes may await their ack.
const publishWindow = 2048

// publishEvents appends n synthetic TicketCreated events, each to its own
// new aggregate, with async publishes in windows of publishWindow (each
// window's acks are awaited before the next). sent, when not nil, receives
// every event published.
func publishEvents(ctx context.Context, js jetstream.JetStream, n int, sent func(i int, m *nats.Msg)) error {
	now := time.Now().UTC()
	futures := make([]jetstream.PubAckFuture, 0, publishWindow)
	for from := 0; from < n; from += publishWindow {
		futures = futures[:0]
		for i := from; i < min(from+publishWindow, n); i++ {
			e := syntheticEvent(benchTenants[i%len(benchTenants)], i/len(benchTenants), now)
			m := eventMsg(e)
			if sent != nil {
				sent(i, m)
			}
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publish event %d: %w", i, err)
			}
			futures = append(futures, f)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Minute):
			return errors.New("publish: acks did not arrive within a minute")
		}
		for i, f := range futures {
			select {
			case err := <-f.Err():
				return fmt.Errorf("publish event %d: %w", from+i, err)
			default:
			}
		}
	}
	return nil
}
