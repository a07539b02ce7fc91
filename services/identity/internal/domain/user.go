package domain

import (
	"maps"
	"slices"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
)

// User statuses.
const (
	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusOffboarded = "offboarded"
)

// User is the state of a user aggregate.
type User struct {
	ID, TenantID, Email, Name, Locale, TimeZone, Status string
	Roles, Groups                                       []string
	Grants                                              map[string]string // client tenant -> role
	Version                                             uint64
}

// Exists reports whether the user was onboarded.
func (u User) Exists() bool { return u.ID != "" }

// FoldUser rebuilds a user from its events' payloads, oldest first.
func FoldUser(events []any) User {
	var u User
	for _, e := range events {
		switch p := e.(type) {
		case identityv1.UserOnboarded:
			u = User{ID: p.UserID, TenantID: p.TenantID, Email: p.Email, Name: p.Name, Locale: p.Locale,
				TimeZone: p.TimeZone, Status: StatusActive, Roles: sorted(p.Roles), Groups: sorted(p.Groups),
				Grants: map[string]string{}}
		case identityv1.UserUpdated:
			u.Name, u.Locale, u.TimeZone = p.Name, p.Locale, p.TimeZone
		case identityv1.UserRolesChanged:
			u.Roles = sorted(p.Roles)
		case identityv1.UserGroupsChanged:
			u.Groups = sorted(p.Groups)
		case identityv1.UserAccessGranted:
			u.Grants[p.ClientTenantID] = p.Role
		case identityv1.UserAccessRevoked:
			delete(u.Grants, p.ClientTenantID)
		case identityv1.UserSuspended:
			u.Status = StatusSuspended
		case identityv1.UserReactivated:
			u.Status = StatusActive
		case identityv1.UserOffboarded:
			u.Status = StatusOffboarded
			u.Grants = map[string]string{}
		}
		u.Version++
	}
	return u
}

// Onboard creates a user in its home tenant.
type Onboard struct {
	ID, TenantID, Email, Name, Locale, TimeZone string
	Roles, Groups                               []string
	At                                          time.Time
}

// Validate checks the command's fields.
func (c Onboard) Validate() error {
	var f fields
	checkEmail(&f, "email", c.Email)
	checkName(&f, "name", c.Name)
	checkRoles(&f, "roles", c.Roles, true)
	checkIDs(&f, "groups", identityv1.GroupIDPrefix, c.Groups)
	checkLocale(&f, "locale", c.Locale)
	checkTimeZone(&f, "time_zone", c.TimeZone)
	return f.err()
}

// DecideOnboard returns UserOnboarded for a new user; the e-mail claim
// (EmailClaimID) goes in the same atomic write.
func DecideOnboard(u User, c Onboard) ([]any, error) {
	if u.Exists() {
		return nil, ErrAlreadyExists
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return []any{identityv1.UserOnboarded{
		UserID: c.ID, TenantID: c.TenantID, Email: NormalizeEmail(c.Email), Name: c.Name,
		Roles: sorted(c.Roles), Groups: sorted(c.Groups), Locale: c.Locale, TimeZone: c.TimeZone,
		OnboardedAt: at(c.At),
	}}, nil
}

// active refuses commands on a user that does not exist or has left.
func active(u User) error {
	switch {
	case !u.Exists():
		return ErrNotFound
	case u.Status == StatusOffboarded:
		return conflict("user %s was offboarded", u.Email)
	}
	return nil
}

// UpdateUser changes a user's profile, roles or groups; nil fields stay.
type UpdateUser struct {
	Name, Locale, TimeZone *string
	Roles, Groups          *[]string
	At                     time.Time
}

// DecideUpdateUser returns one event per kind of change (profile, roles,
// groups), or nothing if nothing changes.
func DecideUpdateUser(u User, c UpdateUser) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	var f fields
	profile := identityv1.UserUpdated{UserID: u.ID, Name: u.Name, Locale: u.Locale, TimeZone: u.TimeZone, At: at(c.At)}
	if c.Name != nil {
		checkName(&f, "name", *c.Name)
		profile.Name = *c.Name
	}
	if c.Locale != nil {
		checkLocale(&f, "locale", *c.Locale)
		profile.Locale = *c.Locale
	}
	if c.TimeZone != nil {
		checkTimeZone(&f, "time_zone", *c.TimeZone)
		profile.TimeZone = *c.TimeZone
	}
	if c.Roles != nil {
		checkRoles(&f, "roles", *c.Roles, true)
	}
	if c.Groups != nil {
		checkIDs(&f, "groups", identityv1.GroupIDPrefix, *c.Groups)
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	var out []any
	if profile.Name != u.Name || profile.Locale != u.Locale || profile.TimeZone != u.TimeZone {
		out = append(out, profile)
	}
	if c.Roles != nil && !slices.Equal(sorted(*c.Roles), u.Roles) {
		out = append(out, identityv1.UserRolesChanged{UserID: u.ID, Roles: sorted(*c.Roles), At: at(c.At)})
	}
	if c.Groups != nil && !slices.Equal(sorted(*c.Groups), u.Groups) {
		out = append(out, identityv1.UserGroupsChanged{UserID: u.ID, Groups: sorted(*c.Groups), At: at(c.At)})
	}
	return out, nil
}

// DecideJoinGroup adds the user to a group (no event if already in it).
func DecideJoinGroup(u User, group string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if slices.Contains(u.Groups, group) {
		return nil, nil
	}
	return []any{identityv1.UserGroupsChanged{UserID: u.ID, Groups: sorted(append(slices.Clone(u.Groups), group)), At: at(now)}}, nil
}

// DecideLeaveGroup removes the user from a group (no event if not in it).
func DecideLeaveGroup(u User, group string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if !slices.Contains(u.Groups, group) {
		return nil, nil
	}
	rest := slices.DeleteFunc(slices.Clone(u.Groups), func(g string) bool { return g == group })
	return []any{identityv1.UserGroupsChanged{UserID: u.ID, Groups: sorted(rest), At: at(now)}}, nil
}

// DecideGrant lets a provider's user act in one of its client tenants. The
// caller checks that client is a client of the user's tenant.
func DecideGrant(u User, client, role string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	var f fields
	if !validRole(role) {
		f.bad("role", "must be one of requester, agent, supervisor, admin")
	}
	if !validID(identityv1.TenantIDPrefix, client) {
		f.bad("path.tenant_id", "must be a tenant id")
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if u.Grants[client] == role {
		return nil, nil
	}
	var out []any
	if _, had := u.Grants[client]; had {
		// A changed role must invalidate tokens carrying the old one.
		out = append(out, identityv1.UserAccessRevoked{UserID: u.ID, ClientTenantID: client, At: at(now)})
	}
	return append(out, identityv1.UserAccessGranted{UserID: u.ID, ClientTenantID: client, Role: role, At: at(now)}), nil
}

// DecideRevokeGrant ends a grant (no event if there is none).
func DecideRevokeGrant(u User, client string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if _, ok := u.Grants[client]; !ok {
		return nil, nil
	}
	return []any{identityv1.UserAccessRevoked{UserID: u.ID, ClientTenantID: client, At: at(now)}}, nil
}

// DecideSuspendUser suspends an active user.
func DecideSuspendUser(u User, reason string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if u.Status == StatusSuspended {
		return nil, conflict("user %s is already suspended", u.Email)
	}
	var f fields
	checkReason(&f, reason)
	if err := f.err(); err != nil {
		return nil, err
	}
	return []any{identityv1.UserSuspended{UserID: u.ID, Reason: reason, At: at(now)}}, nil
}

// DecideReactivateUser ends a suspension.
func DecideReactivateUser(u User, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if u.Status != StatusSuspended {
		return nil, conflict("user %s is not suspended", u.Email)
	}
	return []any{identityv1.UserReactivated{UserID: u.ID, At: at(now)}}, nil
}

// DecideOffboard deactivates a user for good.
func DecideOffboard(u User, reason string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	var f fields
	checkReason(&f, reason)
	if err := f.err(); err != nil {
		return nil, err
	}
	return []any{identityv1.UserOffboarded{UserID: u.ID, Reason: reason, At: at(now)}}, nil
}

// DecidePasswordChanged records a new password; a reset or change also
// revokes every session from before it.
func DecidePasswordChanged(u User, reason string, now time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	out := []any{identityv1.PasswordChanged{UserID: u.ID, Reason: reason, At: at(now)}}
	if reason != identityv1.PasswordReasonSet {
		out = append(out, identityv1.SessionsRevoked{UserID: u.ID, Reason: "password " + reason, Before: at(now)})
	}
	return out, nil
}

// DecideRevokeSession ends one session.
func DecideRevokeSession(u User, session, reason string, now time.Time) ([]any, error) {
	if !u.Exists() {
		return nil, ErrNotFound
	}
	return []any{identityv1.SessionRevoked{UserID: u.ID, SessionID: session, Reason: reason, At: at(now)}}, nil
}

// DecideRequestPasswordReset records a reset request for an active user;
// sealed is the token sealed for the notifications service.
func DecideRequestPasswordReset(u User, resetID, sealed string, expires time.Time) ([]any, error) {
	if err := active(u); err != nil {
		return nil, err
	}
	if u.Status != StatusActive {
		return nil, conflict("user %s is suspended", u.Email)
	}
	return []any{identityv1.PasswordResetRequested{
		UserID: u.ID, ResetID: resetID, Email: u.Email, Name: u.Name, Locale: u.Locale,
		ExpiresAt: at(expires), SealedToken: sealed,
	}}, nil
}

// GrantsCopy returns the user's grants as a new map.
func (u User) GrantsCopy() map[string]string { return maps.Clone(u.Grants) }
