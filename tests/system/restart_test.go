package system_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/testwait"
	"github.com/opsdesk/opsdesk/services/intake"
)

// acked is a ticket whose create was answered 201.
type acked struct {
	tenant, id string
	seq        uint64
}

// loadLog is what the clients saw.
type loadLog struct {
	mu          sync.Mutex
	acks        []acked
	unavailable []answer // 503s
	outage      bool     // set while NATS is down
	duringDown  int      // 503s received while outage was set
	failures    []string // anything else: other statuses, transport errors (a hang ends in the client timeout)
}

func (l *loadLog) record(tenant string, a answer, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.failures = append(l.failures, fmt.Sprintf("transport error after %s: %v", a.duration.Round(time.Millisecond), err))
	case a.status == http.StatusCreated:
		tk, seq, perr := parseCreated(a)
		if perr != nil {
			l.failures = append(l.failures, perr.Error())
			return
		}
		l.acks = append(l.acks, acked{tenant: tenant, id: tk.ID, seq: seq})
	case a.status == http.StatusServiceUnavailable:
		l.unavailable = append(l.unavailable, a)
		if l.outage {
			l.duringDown++
		}
	default:
		l.failures = append(l.failures, describe(a))
	}
}

func (l *loadLog) counts() (acks, during int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), l.duringDown
}

func (l *loadLog) setOutage(v bool) {
	l.mu.Lock()
	l.outage = v
	l.mu.Unlock()
}

// TestNATSRestartUnderLoad (issue 2, "Bad input and failure"): clients
// create tickets continuously while the NATS server is shut down and
// restarted on the same port and store. While it is down they get a quick
// 503 with Retry-After and a problem body, never a hang; afterwards every
// ticket that was acknowledged with a 201 is in the stream exactly once and
// in the read model exactly once, and the read model holds nothing the
// stream does not.
func TestNATSRestartUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		clients        = 8
		publishTimeout = 2 * time.Second
		// A 503 may take up to one publish timeout: a request that was
		// already waiting for its ack when the server went away. Anything
		// slower is a hang.
		maxUnavailable = publishTimeout + time.Second
	)
	s := start(t, intake.Config{PublishTimeout: publishTimeout})

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		log  loadLog
		wg   sync.WaitGroup
		sent atomic.Int64
	)
	tenants := []string{"t_restart_a", "t_restart_b"}
	for c := range clients {
		wg.Go(func() {
			tenant := tenants[c%len(tenants)]
			for ctx.Err() == nil {
				n := sent.Add(1)
				a, err := s.postTicket(ctx, tenant, fmt.Sprintf("Restart load %d", n))
				if ctx.Err() != nil {
					return // cancelled at the end of the test, not an answer
				}
				log.record(tenant, a, err)
				if err == nil && a.status == http.StatusServiceUnavailable {
					// A polite client backs off (shorter than Retry-After,
					// to keep the test short) rather than spinning.
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		})
	}

	testwait.Until(t, 10*time.Second, "100 tickets acknowledged before the outage", func() bool { a, _ := log.counts(); return a >= 100 })
	s.nats.Shutdown()
	log.setOutage(true)
	testwait.Until(t, 10*time.Second, "40 answers of 503 while NATS is down", func() bool { _, d := log.counts(); return d >= 40 })
	before, _ := log.counts()
	log.setOutage(false)
	s.nats.Restart(t)
	testwait.Until(t, 15*time.Second, "100 more tickets acknowledged after the restart", func() bool {
		a, _ := log.counts()
		return a >= before+100
	})
	stop()
	wg.Wait()

	if len(log.failures) > 0 {
		t.Fatalf("%d requests failed otherwise than 201 or 503, e.g. %s", len(log.failures), log.failures[0])
	}
	var slowest time.Duration
	for _, a := range log.unavailable {
		slowest = max(slowest, a.duration)
		if a.header.Get("Retry-After") == "" || !strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") {
			t.Fatalf("503 without Retry-After or problem+json body: %v %s", a.header, a.body)
		}
		if a.duration > maxUnavailable {
			t.Fatalf("a 503 took %s; while NATS is down the answer must come within %s", a.duration, maxUnavailable)
		}
	}
	t.Logf("%d tickets acknowledged (%d before the restart), %d answered 503, the slowest in %s",
		len(log.acks), before, len(log.unavailable), slowest.Round(time.Millisecond))

	// Every acknowledged ticket is in the stream, exactly once.
	store := jsstore.New(s.nc, s.js, jsstore.Config{Context: ticketv1.Context, Stream: ticketv1.Stream})
	var maxSeq uint64
	seen := map[string]bool{}
	for _, a := range log.acks {
		if seen[a.id] {
			t.Fatalf("ticket %s acknowledged twice", a.id)
		}
		seen[a.id] = true
		maxSeq = max(maxSeq, a.seq)
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		events, last, err := store.Load(lctx, es.Key{Tenant: a.tenant, ID: a.id})
		cancel()
		if err != nil {
			t.Fatalf("load acknowledged ticket %s: %v", a.id, err)
		}
		if len(events) != 1 || events[0].Type != ticketv1.TypeTicketCreated || last != a.seq {
			t.Fatalf("acknowledged ticket %s (seq %d): stream holds %d events, last seq %d; want its one created event",
				a.id, a.seq, len(events), last)
		}
	}

	// The projection catches up with the whole stream, which may also hold
	// tickets stored but never acknowledged (their answer was lost in the
	// outage): those are allowed, duplicates are not.
	state := s.streamState(t)
	if state.LastSeq < maxSeq {
		t.Fatalf("stream's last seq %d is below an acknowledged seq %d", state.LastSeq, maxSeq)
	}
	s.waitProjected(t, state.LastSeq, 20*time.Second)

	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.owner.Query(rctx, `
select t.tenant_id, t.id, count(e.seq)
  from intake.tickets t left join intake.ticket_events e on e.tenant_id = t.tenant_id and e.ticket_id = t.id
 group by t.tenant_id, t.id`)
	if err != nil {
		t.Fatal(err)
	}
	inModel := map[string]int64{}
	for rows.Next() {
		var tenant, id string
		var events int64
		if err := rows.Scan(&tenant, &id, &events); err != nil {
			t.Fatal(err)
		}
		inModel[tenant+"/"+id] = events
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range log.acks {
		n, ok := inModel[a.tenant+"/"+a.id]
		if !ok {
			t.Fatalf("acknowledged ticket %s is missing from the read model", a.id)
		}
		if n != 1 {
			t.Fatalf("acknowledged ticket %s has %d history rows in the read model, want 1", a.id, n)
		}
	}
	// Nothing in the read model that is not in the stream, and the stream
	// fully projected: one ticket per stored created event.
	if uint64(len(inModel)) != state.Msgs {
		t.Fatalf("read model holds %d tickets, stream %d events", len(inModel), state.Msgs)
	}
	if extra := int(state.Msgs) - len(log.acks); extra > 0 {
		t.Logf("%d tickets stored whose 201 no client recorded (request cancelled when the load stopped, or answered 503 when the ack was lost in the outage)", extra)
	}
}
