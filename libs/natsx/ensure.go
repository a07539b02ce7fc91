package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MinDuplicateWindow is the shortest dedup window an event stream gets: a
// client retrying an ambiguous append (timeout, reconnect) must still be
// recognised as a duplicate.
const MinDuplicateWindow = 2 * time.Minute

// EnsureStream creates the event stream described by cfg, or brings an
// existing one in line with it. It is called by every replica at every
// start, so it is idempotent and safe to run concurrently.
//
// A new stream is file-backed, limits-retained with no max age, deduplicates
// Nats-Msg-Id over cfg.DuplicateWindow (at least MinDuplicateWindow), denies
// delete and purge, and allows direct get and atomic batch publish. On an
// existing stream the settings JetStream can change in place are updated
// (subjects added, replicas, duplicate window, max age, the deny and allow
// flags); the ones it cannot (storage type, a work-queue retention) are left
// as they are and logged, because failing every start over them would take
// the service down for a setting only an operator can migrate.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if cfg.Name == "" || len(cfg.Subjects) == 0 {
		return nil, fmt.Errorf("ensure stream: name and subjects are required (got %q, %v)", cfg.Name, cfg.Subjects)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow < MinDuplicateWindow {
		cfg.DuplicateWindow = MinDuplicateWindow
	}
	want := jetstream.StreamConfig{
		Name:               cfg.Name,
		Subjects:           cfg.Subjects,
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		Replicas:           cfg.Replicas,
		Duplicates:         cfg.DuplicateWindow,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
	s, err := ensure(ctx, js, want, func(cur jetstream.StreamConfig) (jetstream.StreamConfig, error) {
		next := cur
		next.Subjects = unionSubjects(cur.Subjects, want.Subjects)
		next.Replicas = want.Replicas
		next.Duplicates = want.Duplicates
		next.MaxAge = 0
		next.DenyDelete, next.DenyPurge = true, true
		next.AllowRollup = false // rollups need purge, which we deny
		next.AllowDirect = true
		next.AllowAtomicPublish = true
		if cur.Storage != want.Storage {
			slog.Default().Warn("stream storage differs and cannot be changed in place",
				"stream", cfg.Name, "have", cur.Storage.String(), "want", want.Storage.String())
		}
		switch cur.Retention {
		case jetstream.WorkQueuePolicy:
			slog.Default().Warn("stream retention is work-queue and cannot be changed in place",
				"stream", cfg.Name, "want", want.Retention.String())
		default:
			next.Retention = want.Retention
		}
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	// A server older than 2.12 drops the setting it does not know and would
	// store a "batch" message by message: refuse to run on it.
	if !s.CachedInfo().Config.AllowAtomicPublish {
		return nil, fmt.Errorf("stream %s: server does not support atomic batch publish (needs nats-server 2.12 or later)", cfg.Name)
	}
	return s, nil
}

// ensure creates want, or when the stream exists applies update to its
// current config and sends the result only if it differs.
func ensure(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig,
	update func(cur jetstream.StreamConfig) (jetstream.StreamConfig, error),
) (jetstream.Stream, error) {
	// Two tries: another replica may create the stream between our lookup
	// and our create, in which case the second round updates it instead.
	for range 2 {
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", want.Name, err)
			}
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", want.Name, err)
		}
		cur := s.CachedInfo().Config
		next, err := update(cur)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", want.Name, err)
		}
		if sameConfig(cur, next) {
			return s, nil
		}
		s, err = js.UpdateStream(ctx, next)
		if err != nil {
			return nil, fmt.Errorf("update stream %s: %w", want.Name, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("ensure stream %s: created and deleted concurrently, giving up", want.Name)
}

// sameConfig compares the fields ensure manages; the server fills in many
// others (limits, placement, metadata) that we leave alone.
func sameConfig(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) &&
		a.Replicas == b.Replicas &&
		a.Duplicates == b.Duplicates &&
		a.MaxAge == b.MaxAge &&
		a.Retention == b.Retention &&
		a.DenyDelete == b.DenyDelete &&
		a.DenyPurge == b.DenyPurge &&
		a.AllowRollup == b.AllowRollup &&
		a.AllowDirect == b.AllowDirect &&
		a.AllowAtomicPublish == b.AllowAtomicPublish &&
		a.AllowMsgCounter == b.AllowMsgCounter &&
		a.MaxMsgsPerSubject == b.MaxMsgsPerSubject
}

// unionSubjects keeps subjects an operator added and appends the ones we
// need, so a second binder of the stream is not undone at every start.
func unionSubjects(have, need []string) []string {
	out := slices.Clone(have)
	for _, s := range need {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
