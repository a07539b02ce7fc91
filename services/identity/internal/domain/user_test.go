package domain_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

func validOnboard() domain.Onboard {
	return domain.Onboard{
		ID: userID, TenantID: tenantID, Email: "Ada.Lovelace@Northwind.Example", Name: "Ada Lovelace",
		Roles:  []string{identityv1.RoleSupervisor, identityv1.RoleAgent},
		Groups: []string{group1, group2},
		Locale: "en-GB", TimeZone: "Europe/London", At: now,
	}
}

// onboarded is what validOnboard decides: e-mail lower-cased, roles and
// groups sorted.
func onboarded() identityv1.UserOnboarded {
	return identityv1.UserOnboarded{
		UserID: userID, TenantID: tenantID, Email: "ada.lovelace@northwind.example", Name: "Ada Lovelace",
		Roles:  []string{identityv1.RoleAgent, identityv1.RoleSupervisor},
		Groups: []string{group2, group1},
		Locale: "en-GB", TimeZone: "Europe/London", OnboardedAt: nowUTC,
	}
}

func onboardedWith(edit func(*identityv1.UserOnboarded)) identityv1.UserOnboarded {
	e := onboarded()
	edit(&e)
	return e
}

// Histories of the user in each status.
var (
	userSuspended   = identityv1.UserSuspended{UserID: userID, Reason: "Security review.", At: nowUTC}
	userReactivated = identityv1.UserReactivated{UserID: userID, At: nowUTC}
	userOffboarded  = identityv1.UserOffboarded{UserID: userID, Reason: "Left.", At: nowUTC}
	granted         = identityv1.UserAccessGranted{UserID: userID, ClientTenantID: clientID, Role: identityv1.RoleAgent, At: nowUTC}
)

func activeUser() []any     { return []any{onboarded()} }
func suspendedUser() []any  { return []any{onboarded(), userSuspended} }
func offboardedUser() []any { return []any{onboarded(), userOffboarded} }

func TestDecideOnboard(t *testing.T) {
	tests := []struct {
		name  string
		given []any
		when  func(*domain.Onboard)
		then
	}{
		{
			name: "new user: e-mail lower-cased, roles and groups sorted, UTC microsecond time",
			when: func(*domain.Onboard) {},
			then: then{events: []any{onboarded()}},
		},
		{
			name: "without groups the event still carries an empty list",
			when: func(c *domain.Onboard) { c.Groups = nil },
			then: then{events: []any{onboardedWith(func(e *identityv1.UserOnboarded) { e.Groups = []string{} })}},
		},
		{
			name: "every role",
			when: func(c *domain.Onboard) {
				c.Roles = []string{identityv1.RoleRequester, identityv1.RoleAdmin, identityv1.RoleAgent, identityv1.RoleSupervisor}
			},
			then: then{events: []any{onboardedWith(func(e *identityv1.UserOnboarded) {
				e.Roles = []string{identityv1.RoleAdmin, identityv1.RoleAgent, identityv1.RoleRequester, identityv1.RoleSupervisor}
			})}},
		},
		{
			name: "e-mail of 320 characters",
			when: func(c *domain.Onboard) { c.Email = strings.Repeat("A", 308) + "@example.com" },
			then: then{events: []any{onboardedWith(func(e *identityv1.UserOnboarded) {
				e.Email = strings.Repeat("a", 308) + "@example.com"
			})}},
		},
		{
			name:  "an existing user cannot be onboarded again",
			given: activeUser(),
			when:  func(*domain.Onboard) {},
			then:  then{err: domain.ErrAlreadyExists},
		},
		{
			name:  "an offboarded user cannot be onboarded again",
			given: offboardedUser(),
			when:  func(*domain.Onboard) {},
			then:  then{err: domain.ErrAlreadyExists},
		},
		{name: "roles missing", when: func(c *domain.Onboard) { c.Roles = nil }, then: then{badFields: []string{"roles"}}},
		{name: "roles empty", when: func(c *domain.Onboard) { c.Roles = []string{} }, then: then{badFields: []string{"roles"}}},
		{
			name: "duplicate role reported by index",
			when: func(c *domain.Onboard) { c.Roles = []string{identityv1.RoleAgent, identityv1.RoleAgent} },
			then: then{badFields: []string{"roles.1"}},
		},
		{
			name: "unknown role reported by index",
			when: func(c *domain.Onboard) { c.Roles = []string{identityv1.RoleAgent, "root", identityv1.RoleAdmin} },
			then: then{badFields: []string{"roles.1"}},
		},
		{name: "role in upper case", when: func(c *domain.Onboard) { c.Roles = []string{"Admin"} }, then: then{badFields: []string{"roles.0"}}},
		{name: "empty role", when: func(c *domain.Onboard) { c.Roles = []string{""} }, then: then{badFields: []string{"roles.0"}}},
		{name: "malformed group id", when: func(c *domain.Onboard) { c.Groups = []string{"g_123"} }, then: then{badFields: []string{"groups.0"}}},
		{name: "user id as a group", when: func(c *domain.Onboard) { c.Groups = []string{userID} }, then: then{badFields: []string{"groups.0"}}},
		{name: "lower-case group ulid", when: func(c *domain.Onboard) { c.Groups = []string{strings.ToLower(group1)} }, then: then{badFields: []string{"groups.0"}}},
		{name: "second group malformed", when: func(c *domain.Onboard) { c.Groups = []string{group1, "x"} }, then: then{badFields: []string{"groups.1"}}},
		{name: "duplicate group", when: func(c *domain.Onboard) { c.Groups = []string{group1, group2, group1} }, then: then{badFields: []string{"groups.2"}}},
		{name: "empty e-mail", when: func(c *domain.Onboard) { c.Email = "" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail without @", when: func(c *domain.Onboard) { c.Email = "ada.example.com" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail without domain", when: func(c *domain.Onboard) { c.Email = "ada@" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail without dot in domain", when: func(c *domain.Onboard) { c.Email = "ada@localhost" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail with two @", when: func(c *domain.Onboard) { c.Email = "ada@b@example.com" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail with a space", when: func(c *domain.Onboard) { c.Email = "ada lovelace@example.com" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail with a display name", when: func(c *domain.Onboard) { c.Email = "Ada <ada@example.com>" }, then: then{badFields: []string{"email"}}},
		{name: "e-mail too long", when: func(c *domain.Onboard) { c.Email = strings.Repeat("a", 309) + "@example.com" }, then: then{badFields: []string{"email"}}},
		{name: "blank name", when: func(c *domain.Onboard) { c.Name = " " }, then: then{badFields: []string{"name"}}},
		{name: "name with a tab", when: func(c *domain.Onboard) { c.Name = "Ada\tLovelace" }, then: then{badFields: []string{"name"}}},
		{name: "missing locale", when: func(c *domain.Onboard) { c.Locale = "" }, then: then{badFields: []string{"locale"}}},
		{name: "missing time zone", when: func(c *domain.Onboard) { c.TimeZone = "" }, then: then{badFields: []string{"time_zone"}}},
		{name: "time zone Local", when: func(c *domain.Onboard) { c.TimeZone = "Local" }, then: then{badFields: []string{"time_zone"}}},
		{
			name: "every field wrong, in order",
			when: func(c *domain.Onboard) {
				c.Email, c.Name, c.Roles, c.Groups, c.Locale, c.TimeZone = "x", "", []string{"boss", "boss"}, []string{"g_", group1, group1}, "EN", "Mars/Olympus"
			},
			then: then{badFields: []string{"email", "name", "roles.0", "roles.1", "groups.0", "groups.2", "locale", "time_zone"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validOnboard()
			tt.when(&c)
			got, err := domain.DecideOnboard(domain.FoldUser(tt.given), c)
			tt.check(t, got, err)
		})
	}
}

func TestFoldUser(t *testing.T) {
	base := domain.User{
		ID: userID, TenantID: tenantID, Email: "ada.lovelace@northwind.example", Name: "Ada Lovelace",
		Locale: "en-GB", TimeZone: "Europe/London", Status: domain.StatusActive,
		Roles:  []string{identityv1.RoleAgent, identityv1.RoleSupervisor},
		Groups: []string{group2, group1},
		Grants: map[string]string{}, Version: 1,
	}
	with := func(edit func(*domain.User)) domain.User {
		u := base
		u.Grants = map[string]string{}
		edit(&u)
		return u
	}
	tests := []struct {
		name  string
		given []any
		want  domain.User
	}{
		{name: "no events: no user"},
		{name: "onboarded", given: activeUser(), want: base},
		{
			name: "lists from the event are sorted",
			given: []any{onboardedWith(func(e *identityv1.UserOnboarded) {
				e.Roles, e.Groups = []string{identityv1.RoleSupervisor, identityv1.RoleAgent}, nil
			})},
			want: with(func(u *domain.User) { u.Groups = []string{} }),
		},
		{
			name: "profile, roles and groups changed",
			given: []any{
				onboarded(),
				identityv1.UserUpdated{UserID: userID, Name: "Ada King", Locale: "de-DE", TimeZone: "Europe/Berlin", At: nowUTC},
				identityv1.UserRolesChanged{UserID: userID, Roles: []string{identityv1.RoleAdmin}, At: nowUTC},
				identityv1.UserGroupsChanged{UserID: userID, Groups: []string{group3, group1}, At: nowUTC},
			},
			want: with(func(u *domain.User) {
				u.Name, u.Locale, u.TimeZone = "Ada King", "de-DE", "Europe/Berlin"
				u.Roles, u.Groups, u.Version = []string{identityv1.RoleAdmin}, []string{group1, group3}, 4
			}),
		},
		{
			name: "grants added, changed and revoked",
			given: []any{
				onboarded(), granted,
				identityv1.UserAccessGranted{UserID: userID, ClientTenantID: client2ID, Role: identityv1.RoleRequester, At: nowUTC},
				identityv1.UserAccessRevoked{UserID: userID, ClientTenantID: clientID, At: nowUTC},
				identityv1.UserAccessGranted{UserID: userID, ClientTenantID: client2ID, Role: identityv1.RoleAdmin, At: nowUTC},
			},
			want: with(func(u *domain.User) { u.Grants[client2ID], u.Version = identityv1.RoleAdmin, 5 }),
		},
		{name: "suspended", given: suspendedUser(), want: with(func(u *domain.User) { u.Status, u.Version = domain.StatusSuspended, 2 })},
		{name: "reactivated", given: []any{onboarded(), userSuspended, userReactivated}, want: with(func(u *domain.User) { u.Version = 3 })},
		{
			name:  "offboarding clears the grants",
			given: []any{onboarded(), granted, userSuspended, userOffboarded},
			want:  with(func(u *domain.User) { u.Status, u.Version = domain.StatusOffboarded, 4 }),
		},
		{
			name:  "sessions, passwords and unknown events count as versions only",
			given: []any{onboarded(), identityv1.PasswordChanged{UserID: userID}, identityv1.SessionsRevoked{UserID: userID}, struct{}{}},
			want:  with(func(u *domain.User) { u.Version = 4 }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := domain.FoldUser(tt.given)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("FoldUser = %+v\nwant      %+v", got, tt.want)
			}
			if got.Exists() != (tt.want.ID != "") {
				t.Fatalf("Exists = %v", got.Exists())
			}
		})
	}
}

func TestGrantsCopy(t *testing.T) {
	u := domain.FoldUser([]any{onboarded(), granted})
	c := u.GrantsCopy()
	if !reflect.DeepEqual(c, map[string]string{clientID: identityv1.RoleAgent}) {
		t.Fatalf("GrantsCopy = %v", c)
	}
	c[client2ID] = identityv1.RoleAdmin
	delete(c, clientID)
	if !reflect.DeepEqual(u.Grants, map[string]string{clientID: identityv1.RoleAgent}) {
		t.Fatalf("changing the copy changed the user: %v", u.Grants)
	}
}

// userCommands is one valid call of every decide function on an existing
// user, for the checks every one of them makes.
var userCommands = []struct {
	name   string
	decide func(domain.User) ([]any, error)
}{
	{"update", func(u domain.User) ([]any, error) {
		return domain.DecideUpdateUser(u, domain.UpdateUser{Name: ptr("Ada King"), At: now})
	}},
	{"join group", func(u domain.User) ([]any, error) { return domain.DecideJoinGroup(u, group3, now) }},
	{"leave group", func(u domain.User) ([]any, error) { return domain.DecideLeaveGroup(u, group1, now) }},
	{"grant", func(u domain.User) ([]any, error) {
		return domain.DecideGrant(u, client2ID, identityv1.RoleAgent, now)
	}},
	{"revoke grant", func(u domain.User) ([]any, error) { return domain.DecideRevokeGrant(u, clientID, now) }},
	{"suspend", func(u domain.User) ([]any, error) { return domain.DecideSuspendUser(u, "", now) }},
	{"reactivate", func(u domain.User) ([]any, error) { return domain.DecideReactivateUser(u, now) }},
	{"offboard", func(u domain.User) ([]any, error) { return domain.DecideOffboard(u, "", now) }},
	{"password set", func(u domain.User) ([]any, error) {
		return domain.DecidePasswordChanged(u, identityv1.PasswordReasonSet, now)
	}},
	{"password reset", func(u domain.User) ([]any, error) {
		return domain.DecidePasswordChanged(u, identityv1.PasswordReasonReset, now)
	}},
	{"request password reset", func(u domain.User) ([]any, error) {
		return domain.DecideRequestPasswordReset(u, resetID, "sealed", now.Add(time.Hour))
	}},
}

func TestUserCommandsOnMissingUser(t *testing.T) {
	for _, c := range userCommands {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.decide(domain.FoldUser(nil))
			then{err: domain.ErrNotFound}.check(t, got, err)
		})
	}
	t.Run("revoke session", func(t *testing.T) {
		got, err := domain.DecideRevokeSession(domain.FoldUser(nil), sessionID, "logout", now)
		then{err: domain.ErrNotFound}.check(t, got, err)
	})
}

func TestUserCommandsOnOffboardedUser(t *testing.T) {
	// The user still is in groups, so "leave group" would otherwise decide
	// an event; offboarding cleared the grant.
	for _, c := range userCommands {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.decide(domain.FoldUser([]any{onboarded(), granted, userOffboarded}))
			then{conflict: true}.check(t, got, err)
		})
	}
}

func TestDecideUpdateUser(t *testing.T) {
	profile := func(name, locale, tz string) identityv1.UserUpdated {
		return identityv1.UserUpdated{UserID: userID, Name: name, Locale: locale, TimeZone: tz, At: nowUTC}
	}
	roles := func(r ...string) identityv1.UserRolesChanged {
		return identityv1.UserRolesChanged{UserID: userID, Roles: r, At: nowUTC}
	}
	groups := func(g ...string) identityv1.UserGroupsChanged {
		if g == nil {
			g = []string{}
		}
		return identityv1.UserGroupsChanged{UserID: userID, Groups: g, At: nowUTC}
	}
	tests := []struct {
		name  string
		given []any
		when  domain.UpdateUser
		then
	}{
		{name: "nothing given: no events", given: activeUser()},
		{
			name:  "the same values, lists in another order: no events",
			given: activeUser(),
			when: domain.UpdateUser{
				Name: ptr("Ada Lovelace"), Locale: ptr("en-GB"), TimeZone: ptr("Europe/London"),
				Roles:  ptr([]string{identityv1.RoleSupervisor, identityv1.RoleAgent}),
				Groups: ptr([]string{group1, group2}),
			},
		},
		{
			name:  "name only: UserUpdated keeps locale and time zone",
			given: activeUser(),
			when:  domain.UpdateUser{Name: ptr("Ada King")},
			then:  then{events: []any{profile("Ada King", "en-GB", "Europe/London")}},
		},
		{
			name:  "locale only",
			given: activeUser(),
			when:  domain.UpdateUser{Locale: ptr("de-DE")},
			then:  then{events: []any{profile("Ada Lovelace", "de-DE", "Europe/London")}},
		},
		{
			name:  "time zone only",
			given: activeUser(),
			when:  domain.UpdateUser{TimeZone: ptr("Europe/Berlin")},
			then:  then{events: []any{profile("Ada Lovelace", "en-GB", "Europe/Berlin")}},
		},
		{
			name:  "roles only: UserRolesChanged, sorted",
			given: activeUser(),
			when:  domain.UpdateUser{Roles: ptr([]string{identityv1.RoleSupervisor, identityv1.RoleAdmin})},
			then:  then{events: []any{roles(identityv1.RoleAdmin, identityv1.RoleSupervisor)}},
		},
		{
			name:  "groups only: UserGroupsChanged, sorted",
			given: activeUser(),
			when:  domain.UpdateUser{Groups: ptr([]string{group3, group1})},
			then:  then{events: []any{groups(group1, group3)}},
		},
		{
			name:  "groups emptied",
			given: activeUser(),
			when:  domain.UpdateUser{Groups: ptr([]string{})},
			then:  then{events: []any{groups()}},
		},
		{
			name:  "profile, roles and groups at once: three events in that order",
			given: activeUser(),
			when: domain.UpdateUser{
				Name: ptr("Ada King"), TimeZone: ptr("Europe/Berlin"),
				Roles:  ptr([]string{identityv1.RoleAdmin}),
				Groups: ptr([]string{group3}),
			},
			then: then{events: []any{
				profile("Ada King", "en-GB", "Europe/Berlin"),
				roles(identityv1.RoleAdmin),
				groups(group3),
			}},
		},
		{
			name:  "only what changed yields an event",
			given: activeUser(),
			when: domain.UpdateUser{
				Name:   ptr("Ada Lovelace"),
				Roles:  ptr([]string{identityv1.RoleAgent, identityv1.RoleSupervisor}),
				Groups: ptr([]string{group2}),
			},
			then: then{events: []any{groups(group2)}},
		},
		{
			name:  "compares with the state after earlier changes",
			given: []any{onboarded(), roles(identityv1.RoleAdmin), groups(group3)},
			when:  domain.UpdateUser{Roles: ptr([]string{identityv1.RoleAdmin}), Groups: ptr([]string{group3})},
		},
		{
			name:  "a suspended user can be updated",
			given: suspendedUser(),
			when:  domain.UpdateUser{Roles: ptr([]string{identityv1.RoleRequester})},
			then:  then{events: []any{roles(identityv1.RoleRequester)}},
		},
		{name: "a missing user", when: domain.UpdateUser{Name: ptr("x")}, then: then{err: domain.ErrNotFound}},
		{name: "an offboarded user", given: offboardedUser(), when: domain.UpdateUser{Name: ptr("x")}, then: then{conflict: true}},
		{name: "roles emptied", given: activeUser(), when: domain.UpdateUser{Roles: ptr([]string{})}, then: then{badFields: []string{"roles"}}},
		{
			name:  "duplicate role",
			given: activeUser(),
			when:  domain.UpdateUser{Roles: ptr([]string{identityv1.RoleAdmin, identityv1.RoleAgent, identityv1.RoleAdmin})},
			then:  then{badFields: []string{"roles.2"}},
		},
		{name: "unknown role", given: activeUser(), when: domain.UpdateUser{Roles: ptr([]string{"owner"})}, then: then{badFields: []string{"roles.0"}}},
		{name: "bad group id", given: activeUser(), when: domain.UpdateUser{Groups: ptr([]string{group1, "g_1"})}, then: then{badFields: []string{"groups.1"}}},
		{name: "blank name", given: activeUser(), when: domain.UpdateUser{Name: ptr("")}, then: then{badFields: []string{"name"}}},
		{name: "bad locale", given: activeUser(), when: domain.UpdateUser{Locale: ptr("english")}, then: then{badFields: []string{"locale"}}},
		{name: "bad time zone", given: activeUser(), when: domain.UpdateUser{TimeZone: ptr("Mars/Olympus")}, then: then{badFields: []string{"time_zone"}}},
		{
			name:  "every field wrong, in order, and no event for the valid rest",
			given: activeUser(),
			when: domain.UpdateUser{
				Name: ptr("a\nb"), Locale: ptr(""), TimeZone: ptr("Local"),
				Roles: ptr([]string{"x"}), Groups: ptr([]string{"y"}),
			},
			then: then{badFields: []string{"name", "locale", "time_zone", "roles.0", "groups.0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.when
			c.At = now
			got, err := domain.DecideUpdateUser(domain.FoldUser(tt.given), c)
			tt.check(t, got, err)
		})
	}
}

func TestDecideJoinAndLeaveGroup(t *testing.T) {
	changed := func(g ...string) identityv1.UserGroupsChanged {
		if g == nil {
			g = []string{}
		}
		return identityv1.UserGroupsChanged{UserID: userID, Groups: g, At: nowUTC}
	}
	tests := []struct {
		name   string
		given  []any
		decide func(domain.User, string, time.Time) ([]any, error)
		group  string
		then
	}{
		{name: "join a new group: sorted list", given: activeUser(), decide: domain.DecideJoinGroup, group: group3, then: then{events: []any{changed(group2, group1, group3)}}},
		{name: "join sorts the new group in", given: []any{onboardedWith(func(e *identityv1.UserOnboarded) { e.Groups = []string{group1} })}, decide: domain.DecideJoinGroup, group: group2, then: then{events: []any{changed(group2, group1)}}},
		{name: "join the first group", given: []any{onboardedWith(func(e *identityv1.UserOnboarded) { e.Groups = nil })}, decide: domain.DecideJoinGroup, group: group1, then: then{events: []any{changed(group1)}}},
		{name: "join a group already joined: no events", given: activeUser(), decide: domain.DecideJoinGroup, group: group1},
		{name: "a suspended user joins", given: suspendedUser(), decide: domain.DecideJoinGroup, group: group3, then: then{events: []any{changed(group2, group1, group3)}}},
		{name: "leave a group", given: activeUser(), decide: domain.DecideLeaveGroup, group: group2, then: then{events: []any{changed(group1)}}},
		{name: "leave the last group: empty list", given: []any{onboardedWith(func(e *identityv1.UserOnboarded) { e.Groups = []string{group3} })}, decide: domain.DecideLeaveGroup, group: group3, then: then{events: []any{changed()}}},
		{name: "leave a group not joined: no events", given: activeUser(), decide: domain.DecideLeaveGroup, group: group3},
		{name: "leave after leaving: no events", given: []any{onboarded(), changed(group1)}, decide: domain.DecideLeaveGroup, group: group2},
		{name: "join on a missing user", decide: domain.DecideJoinGroup, group: group1, then: then{err: domain.ErrNotFound}},
		{name: "leave on an offboarded user", given: offboardedUser(), decide: domain.DecideLeaveGroup, group: group1, then: then{conflict: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := domain.FoldUser(tt.given)
			before := append([]string(nil), u.Groups...)
			got, err := tt.decide(u, tt.group, now)
			tt.check(t, got, err)
			if !reflect.DeepEqual(append([]string(nil), u.Groups...), before) {
				t.Fatalf("deciding changed the state's groups: %v, was %v", u.Groups, before)
			}
		})
	}
}

func TestDecideGrant(t *testing.T) {
	grant := func(client, role string) identityv1.UserAccessGranted {
		return identityv1.UserAccessGranted{UserID: userID, ClientTenantID: client, Role: role, At: nowUTC}
	}
	revoke := func(client string) identityv1.UserAccessRevoked {
		return identityv1.UserAccessRevoked{UserID: userID, ClientTenantID: client, At: nowUTC}
	}
	tests := []struct {
		name         string
		given        []any
		client, role string
		then
	}{
		{name: "new grant", given: activeUser(), client: clientID, role: identityv1.RoleAgent, then: then{events: []any{grant(clientID, identityv1.RoleAgent)}}},
		{name: "same role again: no events", given: []any{onboarded(), granted}, client: clientID, role: identityv1.RoleAgent},
		{
			name:  "changed role: revoke, then grant",
			given: []any{onboarded(), granted}, client: clientID, role: identityv1.RoleAdmin,
			then: then{events: []any{revoke(clientID), grant(clientID, identityv1.RoleAdmin)}},
		},
		{
			name:  "a second client leaves the first grant alone",
			given: []any{onboarded(), granted}, client: client2ID, role: identityv1.RoleRequester,
			then: then{events: []any{grant(client2ID, identityv1.RoleRequester)}},
		},
		{
			name:  "again after a revocation: grant only",
			given: []any{onboarded(), granted, revoke(clientID)}, client: clientID, role: identityv1.RoleAgent,
			then: then{events: []any{grant(clientID, identityv1.RoleAgent)}},
		},
		{
			name:  "an offboarded user is refused",
			given: []any{onboarded(), granted, userOffboarded}, client: clientID, role: identityv1.RoleAgent,
			then: then{conflict: true},
		},
		{name: "a suspended user can be granted", given: suspendedUser(), client: clientID, role: identityv1.RoleAgent, then: then{events: []any{grant(clientID, identityv1.RoleAgent)}}},
		{name: "unknown role", given: activeUser(), client: clientID, role: "owner", then: then{badFields: []string{"role"}}},
		{name: "empty role", given: activeUser(), client: clientID, role: "", then: then{badFields: []string{"role"}}},
		{name: "user id as tenant", given: activeUser(), client: userID, role: identityv1.RoleAgent, then: then{badFields: []string{"path.tenant_id"}}},
		{name: "empty tenant", given: activeUser(), client: "", role: identityv1.RoleAgent, then: then{badFields: []string{"path.tenant_id"}}},
		{name: "both wrong, in order", given: activeUser(), client: "t_x", role: "Agent", then: then{badFields: []string{"role", "path.tenant_id"}}},
		{name: "a missing user", client: clientID, role: identityv1.RoleAgent, then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideGrant(domain.FoldUser(tt.given), tt.client, tt.role, now)
			tt.check(t, got, err)
		})
	}
}

func TestDecideRevokeGrant(t *testing.T) {
	revoked := identityv1.UserAccessRevoked{UserID: userID, ClientTenantID: clientID, At: nowUTC}
	tests := []struct {
		name   string
		given  []any
		client string
		then
	}{
		{name: "existing grant", given: []any{onboarded(), granted}, client: clientID, then: then{events: []any{revoked}}},
		{name: "no grant: no events", given: activeUser(), client: clientID},
		{name: "another client's grant: no events", given: []any{onboarded(), granted}, client: client2ID},
		{name: "revoked already: no events", given: []any{onboarded(), granted, revoked}, client: clientID},
		{name: "a missing user", client: clientID, then: then{err: domain.ErrNotFound}},
		{name: "an offboarded user", given: []any{onboarded(), granted, userOffboarded}, client: clientID, then: then{conflict: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideRevokeGrant(domain.FoldUser(tt.given), tt.client, now)
			tt.check(t, got, err)
		})
	}
}

func TestUserLifecycle(t *testing.T) {
	suspend := func(reason string) func(domain.User) ([]any, error) {
		return func(u domain.User) ([]any, error) { return domain.DecideSuspendUser(u, reason, now) }
	}
	reactivate := func(u domain.User) ([]any, error) { return domain.DecideReactivateUser(u, now) }
	offboard := func(reason string) func(domain.User) ([]any, error) {
		return func(u domain.User) ([]any, error) { return domain.DecideOffboard(u, reason, now) }
	}
	tests := []struct {
		name   string
		given  []any
		decide func(domain.User) ([]any, error)
		then
	}{
		{
			name: "suspend an active user, reason kept", given: activeUser(), decide: suspend("Security review."),
			then: then{events: []any{userSuspended}},
		},
		{
			name: "suspend again after a reactivation", given: []any{onboarded(), userSuspended, userReactivated}, decide: suspend("Security review."),
			then: then{events: []any{userSuspended}},
		},
		{name: "suspend a suspended user", given: suspendedUser(), decide: suspend("again"), then: then{conflict: true}},
		{name: "suspend with a reason too long", given: activeUser(), decide: suspend(strings.Repeat("x", 201)), then: then{badFields: []string{"reason"}}},
		{name: "suspend with a reason on two lines", given: activeUser(), decide: suspend("a\r\nb"), then: then{badFields: []string{"reason"}}},
		{name: "reactivate a suspended user", given: suspendedUser(), decide: reactivate, then: then{events: []any{userReactivated}}},
		{name: "reactivate an active user", given: activeUser(), decide: reactivate, then: then{conflict: true}},
		{name: "reactivate a reactivated user", given: []any{onboarded(), userSuspended, userReactivated}, decide: reactivate, then: then{conflict: true}},
		{name: "offboard an active user, reason kept", given: activeUser(), decide: offboard("Left."), then: then{events: []any{userOffboarded}}},
		{name: "offboard a suspended user", given: suspendedUser(), decide: offboard("Left."), then: then{events: []any{userOffboarded}}},
		{
			name: "offboard without a reason", given: activeUser(), decide: offboard(""),
			then: then{events: []any{identityv1.UserOffboarded{UserID: userID, At: nowUTC}}},
		},
		{name: "offboard with a control character in the reason", given: activeUser(), decide: offboard("Left.\x07"), then: then{badFields: []string{"reason"}}},
		{name: "offboard an offboarded user", given: offboardedUser(), decide: offboard("again"), then: then{conflict: true}},
		{name: "suspend an offboarded user", given: offboardedUser(), decide: suspend(""), then: then{conflict: true}},
		{name: "reactivate an offboarded user", given: offboardedUser(), decide: reactivate, then: then{conflict: true}},
		{name: "suspend a missing user", decide: suspend(""), then: then{err: domain.ErrNotFound}},
		{name: "reactivate a missing user", decide: reactivate, then: then{err: domain.ErrNotFound}},
		{name: "offboard a missing user", decide: offboard(""), then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide(domain.FoldUser(tt.given))
			tt.check(t, got, err)
		})
	}
}

func TestDecidePasswordChanged(t *testing.T) {
	changed := func(reason string) identityv1.PasswordChanged {
		return identityv1.PasswordChanged{UserID: userID, Reason: reason, At: nowUTC}
	}
	revoked := func(reason string) identityv1.SessionsRevoked {
		return identityv1.SessionsRevoked{UserID: userID, Reason: reason, Before: nowUTC}
	}
	tests := []struct {
		name   string
		given  []any
		reason string
		then
	}{
		{name: "set by an admin: sessions stay", given: activeUser(), reason: identityv1.PasswordReasonSet, then: then{events: []any{changed("set")}}},
		{
			name: "reset: every earlier session revoked", given: activeUser(), reason: identityv1.PasswordReasonReset,
			then: then{events: []any{changed("reset"), revoked("password reset")}},
		},
		{
			name: "changed by the user: every earlier session revoked", given: activeUser(), reason: identityv1.PasswordReasonChanged,
			then: then{events: []any{changed("changed"), revoked("password changed")}},
		},
		{name: "set for a suspended user", given: suspendedUser(), reason: identityv1.PasswordReasonSet, then: then{events: []any{changed("set")}}},
		{name: "an offboarded user", given: offboardedUser(), reason: identityv1.PasswordReasonReset, then: then{conflict: true}},
		{name: "a missing user", reason: identityv1.PasswordReasonSet, then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecidePasswordChanged(domain.FoldUser(tt.given), tt.reason, now)
			tt.check(t, got, err)
		})
	}
}

func TestDecideRevokeSession(t *testing.T) {
	revoked := identityv1.SessionRevoked{UserID: userID, SessionID: sessionID, Reason: "logout", At: nowUTC}
	tests := []struct {
		name  string
		given []any
		then
	}{
		{name: "an active user's session", given: activeUser(), then: then{events: []any{revoked}}},
		{name: "a suspended user's session", given: suspendedUser(), then: then{events: []any{revoked}}},
		// Unlike the other commands, revoking a session is not refused once
		// the user left: it only ever takes access away.
		{name: "an offboarded user's session", given: offboardedUser(), then: then{events: []any{revoked}}},
		{name: "a missing user", then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideRevokeSession(domain.FoldUser(tt.given), sessionID, "logout", now)
			tt.check(t, got, err)
		})
	}
}

func TestDecideRequestPasswordReset(t *testing.T) {
	expires := now.Add(30 * time.Minute)
	requested := func(name, locale string) identityv1.PasswordResetRequested {
		return identityv1.PasswordResetRequested{
			UserID: userID, ResetID: resetID, Email: "ada.lovelace@northwind.example", Name: name, Locale: locale,
			ExpiresAt: nowUTC.Add(30 * time.Minute), SealedToken: "c2VhbGVk",
		}
	}
	tests := []struct {
		name  string
		given []any
		then
	}{
		{name: "an active user: the user's address, name and locale", given: activeUser(), then: then{events: []any{requested("Ada Lovelace", "en-GB")}}},
		{
			name:  "the current profile, not the onboarding one",
			given: []any{onboarded(), identityv1.UserUpdated{UserID: userID, Name: "Ada King", Locale: "de-DE", TimeZone: "Europe/Berlin", At: nowUTC}},
			then:  then{events: []any{requested("Ada King", "de-DE")}},
		},
		{name: "a reactivated user", given: []any{onboarded(), userSuspended, userReactivated}, then: then{events: []any{requested("Ada Lovelace", "en-GB")}}},
		{name: "a suspended user", given: suspendedUser(), then: then{conflict: true}},
		{name: "an offboarded user", given: offboardedUser(), then: then{conflict: true}},
		{name: "a missing user", then: then{err: domain.ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := domain.DecideRequestPasswordReset(domain.FoldUser(tt.given), resetID, "c2VhbGVk", expires)
			tt.check(t, got, err)
		})
	}
}
