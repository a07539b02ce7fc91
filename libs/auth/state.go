package auth

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/libs/es"
)

// State is what a verifier must know beyond a token's signature, folded from
// the IDENTITY stream: suspended and offboarded users, tokens issued before
// a user's roles changed or sessions were revoked, revoked sessions,
// suspended tenants, tenant slugs and parents, and API tokens. It holds no
// secret but the SHA-256 of API tokens. Only negative facts reject a token:
// a user or tenant not seen yet (created a moment ago) is not refused.
type State struct {
	// MaxTokenAge bounds how long an access token lives; a revoked session
	// is forgotten after it (plus DefaultLeeway), when its tokens have
	// expired anyway. Zero means an hour. An Authenticator with a Leeway
	// above DefaultLeeway needs a MaxTokenAge that covers the difference.
	MaxTokenAge time.Duration

	mu       sync.RWMutex
	tenants  map[string]*tenantState
	slugs    map[string]string // slug -> tenant id
	users    map[string]*userState
	sessions map[string]time.Time // revoked session id -> when
	tokens   map[string]*tokenState
	emails   map[string]string // tenant + "\x00" + lower-case e-mail -> user id
	lastSeq  uint64
	pruned   time.Time
}

type tenantState struct {
	slug, parent, kind  string
	operator, suspended bool
}

type userState struct {
	tenant, email         string
	roles                 []string
	suspended, offboarded bool
	notBefore             time.Time // tokens issued before are invalid
}

type tokenState struct {
	tenant, hash, createdBy string
	scopes                  []string
	expires                 time.Time
	revoked                 bool
}

// NewState returns an empty State.
func NewState() *State {
	return &State{
		tenants:  map[string]*tenantState{},
		slugs:    map[string]string{},
		users:    map[string]*userState{},
		sessions: map[string]time.Time{},
		tokens:   map[string]*tokenState{},
		emails:   map[string]string{},
	}
}

// LastSequence is the stream sequence of the last event applied.
func (s *State) LastSequence() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastSeq
}

// Apply folds one IDENTITY event. Types the State does not need are
// skipped; an event it needs but cannot decode is an error (the caller logs
// it and goes on: a verifier must not stop on one bad event).
func (s *State) Apply(e es.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Sequence > s.lastSeq {
		s.lastSeq = e.Sequence
	}
	tenant := e.Tenant
	if parts := strings.Split(e.Subject, "."); len(parts) == 3 {
		tenant = parts[1] // the store guarantees the subject; headers come from the producer
	}
	switch e.Type {
	case identityv1.TypeTenantCreated:
		var p identityv1.TenantCreated
		if err := decode(e, &p); err != nil {
			return err
		}
		s.tenants[p.TenantID] = &tenantState{slug: p.Slug, parent: p.ParentID, kind: p.Kind, operator: p.Operator}
		s.slugs[p.Slug] = p.TenantID
	case identityv1.TypeTenantSuspended:
		var p identityv1.TenantSuspended
		if err := decode(e, &p); err != nil {
			return err
		}
		s.tenant(p.TenantID).suspended = true
	case identityv1.TypeTenantReactivated:
		var p identityv1.TenantReactivated
		if err := decode(e, &p); err != nil {
			return err
		}
		s.tenant(p.TenantID).suspended = false

	case identityv1.TypeUserOnboarded:
		var p identityv1.UserOnboarded
		if err := decode(e, &p); err != nil {
			return err
		}
		u := s.user(p.UserID, tenant)
		u.email, u.roles = strings.ToLower(p.Email), append([]string(nil), p.Roles...)
		s.emails[tenant+"\x00"+u.email] = p.UserID
	case identityv1.TypeUserRolesChanged:
		var p identityv1.UserRolesChanged
		if err := decode(e, &p); err != nil {
			return err
		}
		u := s.user(p.UserID, tenant)
		u.roles = append([]string(nil), p.Roles...)
		u.invalidateBefore(p.At)
	case identityv1.TypeUserAccessRevoked:
		var p identityv1.UserAccessRevoked
		if err := decode(e, &p); err != nil {
			return err
		}
		s.user(p.UserID, tenant).invalidateBefore(p.At)
	case identityv1.TypeUserSuspended:
		var p identityv1.UserSuspended
		if err := decode(e, &p); err != nil {
			return err
		}
		u := s.user(p.UserID, tenant)
		u.suspended = true
		u.invalidateBefore(p.At)
	case identityv1.TypeUserReactivated:
		var p identityv1.UserReactivated
		if err := decode(e, &p); err != nil {
			return err
		}
		s.user(p.UserID, tenant).suspended = false
	case identityv1.TypeUserOffboarded:
		var p identityv1.UserOffboarded
		if err := decode(e, &p); err != nil {
			return err
		}
		u := s.user(p.UserID, tenant)
		u.offboarded = true
		u.invalidateBefore(p.At)
	case identityv1.TypeSessionsRevoked:
		var p identityv1.SessionsRevoked
		if err := decode(e, &p); err != nil {
			return err
		}
		s.user(p.UserID, tenant).invalidateBefore(p.Before)
	case identityv1.TypeSessionRevoked:
		var p identityv1.SessionRevoked
		if err := decode(e, &p); err != nil {
			return err
		}
		s.sessions[p.SessionID] = p.At
		s.prune(p.At)

	case identityv1.TypeAPITokenCreated:
		var p identityv1.APITokenCreated
		if err := decode(e, &p); err != nil {
			return err
		}
		s.tokens[p.TokenID] = &tokenState{tenant: tenant, hash: p.SecretHash, createdBy: p.CreatedBy,
			scopes: append([]string(nil), p.Scopes...), expires: p.ExpiresAt}
	case identityv1.TypeAPITokenRevoked:
		var p identityv1.APITokenRevoked
		if err := decode(e, &p); err != nil {
			return err
		}
		if t := s.tokens[p.TokenID]; t != nil {
			t.revoked = true
		}
	}
	return nil
}

func decode(e es.Event, into any) error {
	if err := json.Unmarshal(e.Data, into); err != nil {
		return fmt.Errorf("auth: decode %s event %s (seq %d): %w", e.Type, e.ID, e.Sequence, err)
	}
	return nil
}

// TenantBySlug returns the id of the tenant with slug (or id ref).
func (s *State) TenantBySlug(ref string) (string, bool) { return s.resolveTenant(ref) }

// TenantSlug returns a tenant's slug.
func (s *State) TenantSlug(id string) (string, bool) {
	t, ok := s.tenantFacts(id)
	return t.slug, ok && t.slug != ""
}

// UserByEmail returns the active user of tenant with the e-mail address
// (any case) and the user's roles; offboarded users are not found.
func (s *State) UserByEmail(tenant, email string) (id string, roles []string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok = s.emails[tenant+"\x00"+strings.ToLower(email)]
	if !ok {
		return "", nil, false
	}
	u := s.users[id]
	if u == nil || u.offboarded {
		return "", nil, false
	}
	return id, append([]string(nil), u.roles...), true
}

// tenant returns the tenant's entry, creating an empty one for a tenant
// whose creation this State has not seen.
func (s *State) tenant(id string) *tenantState {
	t := s.tenants[id]
	if t == nil {
		t = &tenantState{}
		s.tenants[id] = t
	}
	return t
}

func (s *State) user(id, tenant string) *userState {
	u := s.users[id]
	if u == nil {
		u = &userState{tenant: tenant}
		s.users[id] = u
	}
	return u
}

func (u *userState) invalidateBefore(t time.Time) {
	if t.After(u.notBefore) {
		u.notBefore = t
	}
}

// prune forgets revoked sessions whose tokens have all expired. A token is
// accepted until its exp plus the verifier's leeway, so a revoked session
// is kept for DefaultLeeway longer than MaxTokenAge: forgotten exactly at
// MaxTokenAge, its last tokens would work again for that long.
func (s *State) prune(now time.Time) {
	age := s.MaxTokenAge
	if age <= 0 {
		age = time.Hour
	}
	if now.Sub(s.pruned) < age {
		return
	}
	s.pruned = now
	for id, at := range s.sessions {
		if now.Sub(at) > age+DefaultLeeway {
			delete(s.sessions, id)
		}
	}
}

// checkUser reports why a user's access token issued at iat in session sid
// must be refused, or nil.
func (s *State) checkUser(userID, tenant, sid string, iat time.Time) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t := s.tenants[tenant]; t != nil && t.suspended {
		return fmt.Errorf("%w: tenant suspended", ErrUnauthenticated)
	}
	if _, revoked := s.sessions[sid]; revoked {
		return fmt.Errorf("%w: session revoked", ErrUnauthenticated)
	}
	u := s.users[userID]
	switch {
	case u == nil:
		return nil
	case u.offboarded:
		return fmt.Errorf("%w: user offboarded", ErrUnauthenticated)
	case u.suspended:
		return fmt.Errorf("%w: user suspended", ErrUnauthenticated)
	case u.tenant != "" && u.tenant != tenant:
		return fmt.Errorf("%w: user belongs to another tenant", ErrUnauthenticated)
	// iat has microseconds (TimePrecision): a token issued a moment before
	// a revocation in the same second is refused, one a moment after is not.
	// Tokens with whole-second iat (older issuers) err on the refusing side.
	case iat.Before(u.notBefore.Truncate(TimePrecision)):
		return fmt.Errorf("%w: token issued before its user's access changed", ErrUnauthenticated)
	}
	return nil
}

// apiToken returns the token's facts.
func (s *State) apiToken(id string) (tokenState, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tokens[id]
	if t == nil {
		return tokenState{}, false
	}
	return *t, true
}

// resolveTenant turns a tenant id or slug into the tenant id.
func (s *State) resolveTenant(ref string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.tenants[ref]; ok {
		return ref, true
	}
	id, ok := s.slugs[ref]
	return id, ok
}

// tenantFacts returns what is known of a tenant.
func (s *State) tenantFacts(id string) (tenantState, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tenants[id]
	if t == nil {
		return tenantState{}, false
	}
	return *t, true
}
