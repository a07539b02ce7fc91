package auth

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// revokeSession folds a session_revoked event for sid at at.
func revokeSession(t *testing.T, s *State, seq uint64, sid string, at time.Time) {
	t.Helper()
	data, err := json.Marshal(identityv1.SessionRevoked{UserID: "u_1", SessionID: sid, Reason: "logout", At: at})
	if err != nil {
		t.Fatal(err)
	}
	e := es.Event{ID: sid, Type: identityv1.TypeSessionRevoked, Tenant: "t_1", AggregateID: "u_1",
		Subject: "identity.t_1.u_1", Sequence: seq, Data: data, Time: at}
	if err := s.Apply(e); err != nil {
		t.Fatal(err)
	}
}

func revokedSessions(s *State) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id := range s.sessions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestStatePrunesRevokedSessions(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	keep := time.Minute + DefaultLeeway // MaxTokenAge plus the leeway
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		events []time.Duration // after t0, for sessions s0, s1, ...
		want   []string
	}{
		{"one", time.Minute, []time.Duration{0}, []string{"s0"}},
		{"within MaxTokenAge", time.Minute, []time.Duration{0, 30 * time.Second}, []string{"s0", "s1"}},
		{"past MaxTokenAge but within leeway", time.Minute, []time.Duration{0, time.Minute + time.Second}, []string{"s0", "s1"}},
		{"past MaxTokenAge and leeway", time.Minute, []time.Duration{0, keep + time.Second}, []string{"s1"}},
		{"long ago", time.Minute, []time.Duration{0, 24 * time.Hour}, []string{"s1"}},
		{"several rounds", time.Minute, []time.Duration{0, 30 * time.Second, keep + time.Second, 10 * time.Minute}, []string{"s3"}},
		// Pruned at s0 and at s2 (when s0 was too young); at s3, s0 is old
		// enough, but the last prune was less than MaxTokenAge before.
		{"pruned at most once per MaxTokenAge", time.Minute, []time.Duration{0, 50 * time.Second, time.Minute, 100 * time.Second}, []string{"s0", "s1", "s2", "s3"}},
		{"default is an hour", 0, []time.Duration{0, 50 * time.Minute, time.Hour + DefaultLeeway + time.Second}, []string{"s1", "s2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewState()
			s.MaxTokenAge = tc.maxAge
			for i, d := range tc.events {
				revokeSession(t, s, uint64(i+1), "s"+string(rune('0'+i)), t0.Add(d))
			}
			if got := revokedSessions(s); !slices.Equal(got, tc.want) {
				t.Errorf("revoked sessions = %v, want %v", got, tc.want)
			}
			// A remembered session refuses its tokens; a forgotten one no
			// longer does (its tokens have expired anyway).
			for i := range tc.events {
				sid := "s" + string(rune('0'+i))
				err := s.checkUser("u_1", "t_1", sid, t0.Add(-time.Second))
				if remembered := slices.Contains(tc.want, sid); remembered != (err != nil) {
					t.Errorf("checkUser(%s) = %v, remembered %v", sid, err, remembered)
				}
			}
		})
	}
}
