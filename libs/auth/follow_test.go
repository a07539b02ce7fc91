package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/auth/authtest"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/libs/es/jsstore"
	"github.com/opsdesk/opsdesk/libs/natsx"
	"github.com/opsdesk/opsdesk/libs/natsx/natstest"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

// propagation bounds how long an identity event may take to reach a
// verifier in these tests (seconds in production, milliseconds here; the
// follower's retry back-off after a missing stream is at most 5 s).
const propagation = 15 * time.Second

// identityStore appends identity events the way the identity service does.
type identityStore struct {
	t     testing.TB
	store *jsstore.Store
	last  map[es.Key]uint64
}

func newIdentityStore(t testing.TB, nc *nats.Conn, js jetstream.JetStream) *identityStore {
	return &identityStore{
		t:     t,
		store: jsstore.New(nc, js, jsstore.Config{Context: identityv1.Context, Stream: identityv1.Stream}),
		last:  map[es.Key]uint64{},
	}
}

func ensureIdentityStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{Name: identityv1.Stream, Subjects: []string{identityv1.Context + ".>"}}); err != nil {
		t.Fatal(err)
	}
}

type identityPayload struct {
	typ     string
	payload any
}

// append stores payloads as events of aggregate (tenant, id) and returns
// the stream sequence of the last one.
func (s *identityStore) append(tenant, id string, payloads ...identityPayload) uint64 {
	s.t.Helper()
	key := es.Key{Tenant: tenant, ID: id}
	var evts []es.Event
	for _, p := range payloads {
		data, err := json.Marshal(p.payload)
		if err != nil {
			s.t.Fatal(err)
		}
		evts = append(evts, es.Event{ID: ulid.Make().String(), Type: p.typ, Source: identityv1.Source, Actor: "u_admin", Data: data})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := s.store.Append(ctx, key, s.last[key], evts)
	if err != nil {
		s.t.Fatalf("append %s: %v", id, err)
	}
	s.last[key] = seq
	return seq
}

func onboarded(tenant, user string) identityPayload {
	return identityPayload{identityv1.TypeUserOnboarded, identityv1.UserOnboarded{
		UserID: user, TenantID: tenant, Email: user + "@example.com", Roles: []string{auth.RoleAgent}, OnboardedAt: time.Now().UTC()}}
}

func offboarded(user string) identityPayload {
	return identityPayload{identityv1.TypeUserOffboarded, identityv1.UserOffboarded{UserID: user, Reason: "left", At: time.Now().UTC()}}
}

// startFollower runs a Follower of js into state until the test ends, and
// checks that Run returns once its context is cancelled.
func startFollower(t *testing.T, js jetstream.JetStream, state *auth.State) *auth.Follower {
	t.Helper()
	f := auth.NewFollower(js, state, quietLogger())
	if f.Ready() == nil {
		t.Fatal("Follower ready before it ran")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return f
}

// verifier is an Authenticator over iss's key and state that waits for f.
func verifier(iss *authtest.Issuer, f *auth.Follower) *auth.Authenticator {
	return auth.NewAuthenticator(auth.Config{
		Keys:  auth.StaticKeys(map[string]ed25519.PublicKey{iss.Signer.KID: iss.Public}),
		State: iss.State,
		Ready: f.Ready,
	})
}

// untilRefused polls until token is refused as unauthenticated. Meanwhile
// it may be answered "not ready" (the follower catching up), or accepted
// if mayAccept (the revocation was appended live, after the follower
// caught up); nothing else.
func untilRefused(t *testing.T, a *auth.Authenticator, token, what string, mayAccept bool) {
	t.Helper()
	testwait.Until(t, propagation, what, func() bool {
		_, err := authenticate(a, bearer(token), "")
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			return true
		case errors.Is(err, auth.ErrUnavailable):
			return false
		case err == nil && mayAccept:
			return false
		case err == nil:
			t.Fatalf("%s: accepted, though the revocation was on the stream before the follower started", what)
		}
		t.Fatalf("%s: unexpected error %v", what, err)
		return false
	})
}

func TestFollowerWithoutStream(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	iss := authtest.New(t)
	f := startFollower(t, js, iss.State)
	a := verifier(iss, f)

	// Identity has not started: there is nothing to know, so requests are
	// judged at once rather than answered 503.
	testwait.Until(t, propagation, "Ready without an IDENTITY stream", func() bool { return f.Ready() == nil })
	tenant, user := authtest.NewTenantID(), newUserID()
	tok := iss.Token(t, authtest.User{ID: user, Tenant: tenant, Roles: []string{auth.RoleAgent}})
	if _, err := authenticate(a, bearer(tok), ""); err != nil {
		t.Fatalf("without a stream: %v", err)
	}

	// Identity starts later: the follower finds the stream and its events.
	ensureIdentityStream(t, js)
	ids := newIdentityStore(t, nc, js)
	seq := ids.append(tenant, user, onboarded(tenant, user), offboarded(user))
	testwait.Until(t, propagation, "events of a stream created after the follower started", func() bool {
		_, err := authenticate(a, bearer(tok), "")
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("unexpected error %v", err)
		}
		return err != nil
	})
	if got := iss.State.LastSequence(); got != seq {
		t.Errorf("LastSequence = %d, want %d", got, seq)
	}
}

func TestFollowerRevocationReachesVerifier(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	ensureIdentityStream(t, js)
	ids := newIdentityStore(t, nc, js)
	iss := authtest.New(t)
	tenant, gone, stays := authtest.NewTenantID(), newUserID(), newUserID()
	goneTok := iss.Token(t, authtest.User{ID: gone, Tenant: tenant, Roles: []string{auth.RoleAgent}, IssuedAt: time.Now().Add(-time.Minute)})
	ids.append(tenant, stays, onboarded(tenant, stays))
	seq := ids.append(tenant, gone, onboarded(tenant, gone), offboarded(gone))

	f := startFollower(t, js, iss.State)
	a := verifier(iss, f)
	untilRefused(t, a, goneTok, "offboarded user's token refused", false)
	if err := f.Ready(); err != nil {
		t.Fatalf("refused as unauthenticated while not ready: %v", err)
	}
	if got := iss.State.LastSequence(); got < seq {
		t.Errorf("LastSequence = %d, want >= %d", got, seq)
	}

	// Live: events appended after the follower caught up reach it too.
	sid := newSessionID()
	staysTok := iss.Token(t, authtest.User{ID: stays, Tenant: tenant, Roles: []string{auth.RoleAgent}, SessionID: sid})
	otherSessionTok := iss.Token(t, authtest.User{ID: stays, Tenant: tenant, Roles: []string{auth.RoleAgent}})
	if _, err := authenticate(a, bearer(staysTok), ""); err != nil {
		t.Fatalf("user who stays: %v", err)
	}
	ids.append(tenant, stays, identityPayload{identityv1.TypeSessionRevoked, identityv1.SessionRevoked{
		UserID: stays, SessionID: sid, Reason: "logout", At: time.Now().UTC()}})
	untilRefused(t, a, staysTok, "token of a session revoked live refused", true)
	if _, err := authenticate(a, bearer(otherSessionTok), ""); err != nil {
		t.Errorf("another session of the same user: %v", err)
	}

	// A positive fact arrives live as well: a new API token works once its
	// creation has reached the verifier.
	tokID, apiTok := auth.NewAPIToken(newAPITokenULID())
	ids.append(tenant, tokID, identityPayload{identityv1.TypeAPITokenCreated, identityv1.APITokenCreated{
		TokenID: tokID, Name: "ci", Scopes: []string{"tickets:read"}, CreatedBy: "u_admin",
		SecretHash: auth.HashSecret(apiTok), CreatedAt: time.Now().UTC()}})
	testwait.Until(t, propagation, "API token created live accepted", func() bool {
		p, err := authenticate(a, bearer(apiTok), "")
		return err == nil && p.ID == tokID && p.Tenant == tenant
	})
	ids.append(tenant, tokID, identityPayload{identityv1.TypeAPITokenRevoked, identityv1.APITokenRevoked{
		TokenID: tokID, RevokedBy: "u_admin", At: time.Now().UTC()}})
	untilRefused(t, a, apiTok, "API token revoked live refused", true)

	// And a tenant suspension refuses everyone of the tenant.
	ids.append(tenant, tenant, identityPayload{identityv1.TypeTenantSuspended, identityv1.TenantSuspended{TenantID: tenant, At: time.Now().UTC()}})
	untilRefused(t, a, otherSessionTok, "token of a tenant suspended live refused", true)
}

func TestFollowerNotReadyBeforeCaughtUp(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	ensureIdentityStream(t, js)
	ids := newIdentityStore(t, nc, js)
	tenant := authtest.NewTenantID()
	var n uint64
	for range 5 {
		user := newUserID()
		batch := []identityPayload{onboarded(tenant, user)}
		for range 99 {
			batch = append(batch, identityPayload{identityv1.TypeSessionRevoked, identityv1.SessionRevoked{
				UserID: user, SessionID: newSessionID(), Reason: "logout", At: time.Now().UTC()}})
		}
		n = ids.append(tenant, user, batch...)
	}
	if n != 500 {
		t.Fatalf("stream holds %d events, want 500", n)
	}

	state := auth.NewState()
	f := startFollower(t, js, state)
	deadline := time.Now().Add(propagation)
	for f.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v; applied up to %d of %d", propagation, state.LastSequence(), n)
		}
		runtime.Gosched()
	}
	if got := state.LastSequence(); got < n {
		t.Fatalf("Ready with LastSequence %d, before the %d events that were there at start", got, n)
	}
}

func TestFollowerSkipsBadEvents(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	ensureIdentityStream(t, js)
	ids := newIdentityStore(t, nc, js)
	iss := authtest.New(t)
	tenant, spared, gone := authtest.NewTenantID(), newUserID(), newUserID()

	// An event the State needs whose payload does not decode...
	ids.append(tenant, spared, identityPayload{identityv1.TypeUserOffboarded, json.RawMessage(`"not an object"`)})
	// ...a message without a CloudEvents envelope...
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, identityv1.Context+"."+tenant+"."+spared, []byte(`{"user_id":"`+spared+`"}`)); err != nil {
		t.Fatal(err)
	}
	// ...and then a good one: the follower goes on past the bad ones.
	seq := ids.append(tenant, gone, offboarded(gone))

	f := startFollower(t, js, iss.State)
	a := verifier(iss, f)
	untilRefused(t, a, iss.Token(t, authtest.User{ID: gone, Tenant: tenant, IssuedAt: time.Now().Add(-time.Minute)}), "event after bad ones applied", false)
	if _, err := authenticate(a, bearer(iss.Token(t, authtest.User{ID: spared, Tenant: tenant})), ""); err != nil {
		t.Errorf("user of the undecodable event: %v", err)
	}
	if got := iss.State.LastSequence(); got != seq {
		t.Errorf("LastSequence = %d, want %d", got, seq)
	}
}

// After a NATS restart the follower resumes where it was, and events
// appended afterwards reach the verifier.
func TestFollowerResumesAfterServerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, js := srv.Conn(t)
	ensureIdentityStream(t, js)
	ids := newIdentityStore(t, nc, js)
	iss := authtest.New(t)
	tenant, first, second := authtest.NewTenantID(), newUserID(), newUserID()
	ids.append(tenant, first, offboarded(first))

	f := startFollower(t, js, iss.State)
	a := verifier(iss, f)
	untilRefused(t, a, iss.Token(t, authtest.User{ID: first, Tenant: tenant, IssuedAt: time.Now().Add(-time.Minute)}), "first offboarding", false)

	srv.Restart(t)
	var seq uint64
	testwait.Until(t, propagation, "append after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		data, _ := json.Marshal(offboarded(second).payload)
		var err error
		seq, err = ids.store.Append(ctx, es.Key{Tenant: tenant, ID: second}, 0,
			[]es.Event{{ID: "01K94F95D0PVG7SZKRKNDGY4EW", Type: identityv1.TypeUserOffboarded, Source: identityv1.Source, Data: data}})
		return err == nil
	})
	untilRefused(t, a, iss.Token(t, authtest.User{ID: second, Tenant: tenant, IssuedAt: time.Now().Add(-time.Minute)}), "offboarding after the restart", true)
	if got := iss.State.LastSequence(); got != seq {
		t.Errorf("LastSequence = %d, want %d (each event once)", got, seq)
	}
}

func TestUsageReporter(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, _ := srv.Conn(t)
	sub, err := nc.SubscribeSync(auth.UsageSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := auth.NewUsageReporter(nc)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	r.Report("at_1", "t_1", t0)
	r.Report("at_1", "t_1", t0.Add(30*time.Second)) // within the minute: dropped
	r.Report("at_2", "t_2", t0.Add(30*time.Second))
	r.Report("at_1", "t_1", t0.Add(time.Minute))
	if err := nc.Publish(auth.UsageSubject, []byte(`"end"`)); err != nil { // same connection: arrives last
		t.Fatal(err)
	}
	var got []auth.Usage
	for {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) == `"end"` {
			break
		}
		var u auth.Usage
		if err := json.Unmarshal(m.Data, &u); err != nil {
			t.Fatal(err)
		}
		got = append(got, u)
	}
	want := []auth.Usage{{"at_1", "t_1", t0.UTC()}, {"at_2", "t_2", t0.Add(30 * time.Second).UTC()}, {"at_1", "t_1", t0.Add(time.Minute).UTC()}}
	if len(got) != len(want) {
		t.Fatalf("usage messages = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].TokenID != want[i].TokenID || got[i].Tenant != want[i].Tenant || !got[i].At.Equal(want[i].At) || got[i].At.Location() != time.UTC {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
