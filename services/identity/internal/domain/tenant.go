package domain

import (
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// Tenant is the state of a tenant aggregate.
type Tenant struct {
	ID, Slug, Name, Kind, ParentID, TimeZone, Locale string
	Operator, Suspended                              bool
	Version                                          uint64
}

// Exists reports whether the tenant was created.
func (t Tenant) Exists() bool { return t.ID != "" }

// FoldTenant rebuilds a tenant from its events' payloads, oldest first.
func FoldTenant(events []any) Tenant {
	var t Tenant
	for _, e := range events {
		switch p := e.(type) {
		case identityv1.TenantCreated:
			t = Tenant{ID: p.TenantID, Slug: p.Slug, Name: p.Name, Kind: p.Kind, ParentID: p.ParentID,
				TimeZone: p.TimeZone, Locale: p.Locale, Operator: p.Operator}
		case identityv1.TenantUpdated:
			t.Name, t.TimeZone, t.Locale = p.Name, p.TimeZone, p.Locale
		case identityv1.TenantSuspended:
			t.Suspended = true
		case identityv1.TenantReactivated:
			t.Suspended = false
		}
		t.Version++
	}
	return t
}

// ChildKind is the kind of a tenant created under a parent of kind parent:
// a provider's are clients, an enterprise's are departments; clients and
// departments have none.
func ChildKind(parent string) (string, bool) {
	switch parent {
	case identityv1.KindProvider:
		return identityv1.KindClient, true
	case identityv1.KindEnterprise:
		return identityv1.KindDepartment, true
	}
	return "", false
}

// CreateTenant creates a tenant: a root (provider or enterprise, with no
// parent: bootstrap) or a child of an existing tenant.
type CreateTenant struct {
	ID, Slug, Name, Kind, ParentID, TimeZone, Locale string
	Operator                                         bool
	At                                               time.Time
}

// Validate checks the command's fields.
func (c CreateTenant) Validate() error {
	var f fields
	if !ValidSlug(c.Slug) {
		f.bad("slug", "must be 1 to 40 of a-z, 0-9 and -, not starting or ending with -, and not a reserved word")
	}
	checkName(&f, "name", c.Name)
	checkTimeZone(&f, "time_zone", c.TimeZone)
	checkLocale(&f, "locale", c.Locale)
	switch c.Kind {
	case identityv1.KindProvider, identityv1.KindEnterprise:
		if c.ParentID != "" {
			f.bad("kind", "%s tenants have no parent", c.Kind)
		}
	case identityv1.KindClient, identityv1.KindDepartment:
		if !validID(identityv1.TenantIDPrefix, c.ParentID) {
			f.bad("parent_id", "is required for a %s tenant", c.Kind)
		}
	default:
		f.bad("kind", "must be one of provider, client, enterprise, department")
	}
	return f.err()
}

// DecideCreateTenant returns TenantCreated for a tenant that does not exist
// yet. Slug uniqueness is the caller's claim on SlugClaimID, appended in
// the same atomic write.
func DecideCreateTenant(t Tenant, c CreateTenant) ([]any, error) {
	if t.Exists() {
		return nil, ErrAlreadyExists
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return []any{identityv1.TenantCreated{
		TenantID: c.ID, Slug: c.Slug, Name: c.Name, Kind: c.Kind, ParentID: c.ParentID,
		Operator: c.Operator, TimeZone: c.TimeZone, Locale: c.Locale, CreatedAt: at(c.At),
	}}, nil
}

// UpdateTenant changes a tenant's display settings; nil fields stay.
type UpdateTenant struct {
	Name, TimeZone, Locale *string
	At                     time.Time
}

// DecideUpdateTenant returns TenantUpdated, or nothing if nothing changes.
func DecideUpdateTenant(t Tenant, c UpdateTenant) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	next := identityv1.TenantUpdated{TenantID: t.ID, Name: t.Name, TimeZone: t.TimeZone, Locale: t.Locale, At: at(c.At)}
	var f fields
	if c.Name != nil {
		checkName(&f, "name", *c.Name)
		next.Name = *c.Name
	}
	if c.TimeZone != nil {
		checkTimeZone(&f, "time_zone", *c.TimeZone)
		next.TimeZone = *c.TimeZone
	}
	if c.Locale != nil {
		checkLocale(&f, "locale", *c.Locale)
		next.Locale = *c.Locale
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if next.Name == t.Name && next.TimeZone == t.TimeZone && next.Locale == t.Locale {
		return nil, nil
	}
	return []any{next}, nil
}

// DecideSuspendTenant suspends an active tenant.
func DecideSuspendTenant(t Tenant, reason string, now time.Time) ([]any, error) {
	switch {
	case !t.Exists():
		return nil, ErrNotFound
	case t.Suspended:
		return nil, conflict("tenant %s is already suspended", t.Slug)
	case t.Operator:
		return nil, conflict("the operator tenant cannot be suspended")
	}
	var f fields
	checkReason(&f, reason)
	if err := f.err(); err != nil {
		return nil, err
	}
	return []any{identityv1.TenantSuspended{TenantID: t.ID, Reason: reason, At: at(now)}}, nil
}

// DecideReactivateTenant ends a suspension.
func DecideReactivateTenant(t Tenant, now time.Time) ([]any, error) {
	switch {
	case !t.Exists():
		return nil, ErrNotFound
	case !t.Suspended:
		return nil, conflict("tenant %s is not suspended", t.Slug)
	}
	return []any{identityv1.TenantReactivated{TenantID: t.ID, At: at(now)}}, nil
}

// Claim is the state of a unique claim (a slug or an e-mail address): who
// holds it, if anyone.
type Claim struct{ Holder string }

// FoldClaim rebuilds a claim.
func FoldClaim(events []any) Claim {
	var c Claim
	for _, e := range events {
		switch p := e.(type) {
		case identityv1.SlugClaimed:
			c.Holder = p.TenantID
		case identityv1.EmailClaimed:
			c.Holder = p.UserID
		}
	}
	return c
}
