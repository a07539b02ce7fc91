// Package identityv1 holds version 1 of the identity context's event
// contracts: the payloads the identity service appends to the IDENTITY
// stream. Every service's auth layer (libs/auth) folds some of them to
// learn about revoked sessions, suspended users and tenants, and API tokens.
//
// Subjects are identity.<tenant>.<aggregate>: a tenant is its own aggregate
// (identity.<tenant>.<tenant>), users (u_), groups (g_) and API tokens (at_)
// live under their tenant, an e-mail address is claimed under its tenant
// (em_<hash>), and tenant slugs, which are global, are claimed under the
// reserved tenant token "global" (identity.global.sl_<slug>).
//
// Secrets never appear here: passwords and their hashes, refresh tokens and
// private keys stay in the identity service's own tables. An API token's
// secret appears only as its SHA-256, which is what services verify against;
// a password-reset token appears only sealed (AES-GCM) for the notifications
// service.
package identityv1

import (
	"embed"
	"time"

	"github.com/opsdesk/opsdesk/api/events"
)

// Stream and subject layout of the identity context.
const (
	// Context is the first subject token: identity.<tenant>.<aggregate>.
	Context = "identity"
	// Stream is the JetStream stream holding every identity event.
	Stream = "IDENTITY"
	// Source is the CloudEvents source of events identity appends.
	Source = "/services/identity"
	// GlobalTenant is the tenant token of aggregates that belong to no
	// tenant: the claims on tenant slugs, which are unique installation-wide.
	GlobalTenant = "global"
)

// ID prefixes of the identity context's aggregates and records.
const (
	TenantIDPrefix   = "t_"
	UserIDPrefix     = "u_"
	GroupIDPrefix    = "g_"
	APITokenIDPrefix = "at_"
	SessionIDPrefix  = "s_"
	ResetIDPrefix    = "pr_"
	EmailClaimPrefix = "em_"
	SlugClaimPrefix  = "sl_"
)

// ce-types of the identity context, version 1.
const (
	TypeTenantCreated     = "opsdesk.identity.tenant_created.v1"
	TypeTenantUpdated     = "opsdesk.identity.tenant_updated.v1"
	TypeTenantSuspended   = "opsdesk.identity.tenant_suspended.v1"
	TypeTenantReactivated = "opsdesk.identity.tenant_reactivated.v1"
	TypeSlugClaimed       = "opsdesk.identity.slug_claimed.v1"

	TypeUserOnboarded          = "opsdesk.identity.user_onboarded.v1"
	TypeUserUpdated            = "opsdesk.identity.user_updated.v1"
	TypeUserRolesChanged       = "opsdesk.identity.user_roles_changed.v1"
	TypeUserGroupsChanged      = "opsdesk.identity.user_groups_changed.v1"
	TypeUserAccessGranted      = "opsdesk.identity.user_access_granted.v1"
	TypeUserAccessRevoked      = "opsdesk.identity.user_access_revoked.v1"
	TypeUserSuspended          = "opsdesk.identity.user_suspended.v1"
	TypeUserReactivated        = "opsdesk.identity.user_reactivated.v1"
	TypeUserOffboarded         = "opsdesk.identity.user_offboarded.v1"
	TypePasswordChanged        = "opsdesk.identity.password_changed.v1"
	TypeSessionRevoked         = "opsdesk.identity.session_revoked.v1"
	TypeSessionsRevoked        = "opsdesk.identity.sessions_revoked.v1"
	TypePasswordResetRequested = "opsdesk.identity.password_reset_requested.v1"
	TypeEmailClaimed           = "opsdesk.identity.email_claimed.v1"

	TypeGroupCreated = "opsdesk.identity.group_created.v1"
	TypeGroupUpdated = "opsdesk.identity.group_updated.v1"
	TypeGroupDeleted = "opsdesk.identity.group_deleted.v1"

	TypeAPITokenCreated = "opsdesk.identity.api_token_created.v1"
	TypeAPITokenRevoked = "opsdesk.identity.api_token_revoked.v1"
)

// Tenant kinds. An MSP is a provider with client tenants; an enterprise may
// have departments. A provider's children are clients, an enterprise's are
// departments; clients and departments have no children.
const (
	KindProvider   = "provider"
	KindClient     = "client"
	KindEnterprise = "enterprise"
	KindDepartment = "department"
)

// Roles a user holds in a tenant (home tenant, or a client tenant through a
// grant).
const (
	RoleRequester  = "requester"
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
)

// Reasons a password changed (PasswordChanged.Reason). Named PasswordReason*
// because PasswordChanged is the event type.
const (
	PasswordReasonSet     = "set"     // an admin set it (onboarding or later)
	PasswordReasonReset   = "reset"   // the user completed a password reset
	PasswordReasonChanged = "changed" // the user changed it, knowing the old one
)

// TenantCreated records a new tenant. Operator marks the installation's
// operator tenant (the first one, from bootstrap): its admins operate the
// platform (dead letters, rebuilds).
type TenantCreated struct {
	TenantID  string    `json:"tenant_id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	ParentID  string    `json:"parent_id,omitempty"`
	Operator  bool      `json:"operator,omitempty"`
	TimeZone  string    `json:"time_zone"`
	Locale    string    `json:"locale"`
	CreatedAt time.Time `json:"created_at"`
}

// TenantUpdated records new display settings of a tenant.
type TenantUpdated struct {
	TenantID string    `json:"tenant_id"`
	Name     string    `json:"name"`
	TimeZone string    `json:"time_zone"`
	Locale   string    `json:"locale"`
	At       time.Time `json:"at"`
}

// TenantSuspended records that a tenant was suspended: nobody of it, and no
// token acting in it, is served until it is reactivated.
type TenantSuspended struct {
	TenantID string    `json:"tenant_id"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// TenantReactivated ends a suspension.
type TenantReactivated struct {
	TenantID string    `json:"tenant_id"`
	At       time.Time `json:"at"`
}

// SlugClaimed records that a slug (globally unique) is taken by a tenant.
type SlugClaimed struct {
	Slug     string `json:"slug"`
	TenantID string `json:"tenant_id"`
}

// UserOnboarded records a new user in its home tenant, with roles and group
// memberships from the start. Email is unique within the tenant.
type UserOnboarded struct {
	UserID      string    `json:"user_id"`
	TenantID    string    `json:"tenant_id"`
	Email       string    `json:"email"`
	Name        string    `json:"name"`
	Roles       []string  `json:"roles"`
	Groups      []string  `json:"groups,omitempty"`
	Locale      string    `json:"locale"`
	TimeZone    string    `json:"time_zone"`
	OnboardedAt time.Time `json:"onboarded_at"`
}

// UserUpdated records new profile settings of a user.
type UserUpdated struct {
	UserID   string    `json:"user_id"`
	Name     string    `json:"name"`
	Locale   string    `json:"locale"`
	TimeZone string    `json:"time_zone"`
	At       time.Time `json:"at"`
}

// UserRolesChanged records the user's new roles in the home tenant. Tokens
// issued before At stop working, so the change takes effect at once.
type UserRolesChanged struct {
	UserID string    `json:"user_id"`
	Roles  []string  `json:"roles"`
	At     time.Time `json:"at"`
}

// UserGroupsChanged records the user's new group memberships.
type UserGroupsChanged struct {
	UserID string    `json:"user_id"`
	Groups []string  `json:"groups"`
	At     time.Time `json:"at"`
}

// UserAccessGranted records that a provider's user may act in one of the
// provider's client tenants, with a role there.
type UserAccessGranted struct {
	UserID         string    `json:"user_id"`
	ClientTenantID string    `json:"client_tenant_id"`
	Role           string    `json:"role"`
	At             time.Time `json:"at"`
}

// UserAccessRevoked ends a grant; tokens issued before At stop working.
type UserAccessRevoked struct {
	UserID         string    `json:"user_id"`
	ClientTenantID string    `json:"client_tenant_id"`
	At             time.Time `json:"at"`
}

// UserSuspended records that a user may not sign in, and that every token
// of the user stops working, until reactivated.
type UserSuspended struct {
	UserID string    `json:"user_id"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// UserReactivated ends a suspension (tokens issued before it stay invalid).
type UserReactivated struct {
	UserID string    `json:"user_id"`
	At     time.Time `json:"at"`
}

// UserOffboarded records that a user left: deactivated for good, every
// token and refresh token revoked. Assets and intake react to it.
type UserOffboarded struct {
	UserID string    `json:"user_id"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// PasswordChanged records that the user's password was set or changed (the
// password itself is never in an event).
type PasswordChanged struct {
	UserID string    `json:"user_id"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// SessionRevoked records the end of one session (a refresh-token family):
// logout, or reuse of a spent refresh token. Access tokens carrying the
// session id (sid) stop working.
type SessionRevoked struct {
	UserID    string    `json:"user_id"`
	SessionID string    `json:"session_id"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// SessionsRevoked records that every session and token of the user issued
// before Before is revoked (password reset, admin action).
type SessionsRevoked struct {
	UserID string    `json:"user_id"`
	Reason string    `json:"reason"`
	Before time.Time `json:"before"`
}

// PasswordResetRequested asks the notifications service to send the user a
// password-reset link. SealedToken is the single-use token sealed with
// AES-256-GCM under a key both services derive from the installation's
// secret key (libs/secret); it expires at ExpiresAt.
type PasswordResetRequested struct {
	UserID      string    `json:"user_id"`
	ResetID     string    `json:"reset_id"`
	Email       string    `json:"email"`
	Name        string    `json:"name"`
	Locale      string    `json:"locale"`
	ExpiresAt   time.Time `json:"expires_at"`
	SealedToken string    `json:"sealed_token"`
}

// EmailClaimed records that an e-mail address (lower-cased) is taken within
// the tenant by a user. The claim's subject is derived from the address, so
// appending it with "no earlier event" is the uniqueness check.
type EmailClaimed struct {
	Email  string `json:"email"`
	UserID string `json:"user_id"`
}

// GroupCreated records a support group (team) with its tier and skills.
type GroupCreated struct {
	GroupID   string    `json:"group_id"`
	Name      string    `json:"name"`
	Tier      int       `json:"tier"`
	Skills    []string  `json:"skills"`
	CreatedAt time.Time `json:"created_at"`
}

// GroupUpdated records a group's new name, tier or skills.
type GroupUpdated struct {
	GroupID string    `json:"group_id"`
	Name    string    `json:"name"`
	Tier    int       `json:"tier"`
	Skills  []string  `json:"skills"`
	At      time.Time `json:"at"`
}

// GroupDeleted records that a group was removed.
type GroupDeleted struct {
	GroupID string    `json:"group_id"`
	At      time.Time `json:"at"`
}

// APITokenCreated records an API token for integrations. SecretHash is the
// lower-case hex SHA-256 of the token's secret form, the string an
// integration presents (libs/auth.HashSecret): services verify a presented
// token against it. ExpiresAt zero means it does not expire.
type APITokenCreated struct {
	TokenID    string    `json:"token_id"`
	Name       string    `json:"name"`
	Scopes     []string  `json:"scopes"`
	CreatedBy  string    `json:"created_by"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	SecretHash string    `json:"secret_hash"`
	CreatedAt  time.Time `json:"created_at"`
}

// APITokenRevoked records that a token stops working.
type APITokenRevoked struct {
	TokenID   string    `json:"token_id"`
	RevokedBy string    `json:"revoked_by"`
	At        time.Time `json:"at"`
}

// Schemas holds the JSON Schema (draft 2020-12) of every event type of this
// package, one file per type, named as events.EventType.Schema says: the
// part of the ce-type after "opsdesk.identity.", e.g.
// tenant_created.v1.schema.json.
//
//go:embed *.schema.json
var Schemas embed.FS

// Ids and values the examples of EventTypes share, so the examples tell one
// story: Northwind's IT department, an agent of it and her team.
const (
	exampleEnterprise = "t_01K94FJAC03MHPVFVTXXKT1Y4Y"
	exampleTenant     = "t_01K94FJAC06AHQFZ5QK487KF97"
	exampleClient     = "t_01K94FJAC0CZSJW7JMM6S5VC8D"
	exampleUser       = "u_01K94FEN600NX9YM94KCH3DVV7"
	exampleAdmin      = "u_01K94FGFS0Q4STE6NC0X96NWDC"
	exampleGroup1     = "g_01K94F95D0E7R4NPSGMS720VZC"
	exampleGroup2     = "g_01K94F95D09BAV3925GPJQ7PQG"
	exampleGroup3     = "g_01K94F95D0MS5K33GN4CCVDWCV"
	exampleToken      = "at_01K94F95D0PVG7SZKRKNDGY4EW"
	exampleSession    = "s_01K94F7AT0HYPPCWB1G3FX2M1J"
	exampleReset      = "pr_01K94F95D088VCTBTBB9GB4M7M"
	exampleEmail      = "ada.lovelace@northwind.example"
)

// exampleTime returns 2025-11-03 09:12:45.123456 UTC plus d: the examples'
// times, microsecond precision like the event store's.
func exampleTime(d time.Duration) time.Time {
	return time.Date(2025, 11, 3, 9, 12, 45, 123456000, time.UTC).Add(d)
}

// EventTypes lists every event type of the identity context, version 1.
func EventTypes() []events.EventType {
	return []events.EventType{
		{
			Type:   TypeTenantCreated,
			New:    func() any { return &TenantCreated{} },
			Schema: "tenant_created.v1.schema.json",
			// Every field is set, so the contract test covers each one; a
			// real operator tenant (from bootstrap) would have no parent.
			Example: func() any {
				return &TenantCreated{
					TenantID:  exampleTenant,
					Slug:      "northwind-it",
					Name:      "Northwind IT",
					Kind:      KindDepartment,
					ParentID:  exampleEnterprise,
					Operator:  true,
					TimeZone:  "Europe/Berlin",
					Locale:    "de-DE",
					CreatedAt: exampleTime(0),
				}
			},
		},
		{
			Type:   TypeTenantUpdated,
			New:    func() any { return &TenantUpdated{} },
			Schema: "tenant_updated.v1.schema.json",
			Example: func() any {
				return &TenantUpdated{
					TenantID: exampleTenant,
					Name:     "Northwind IT Services",
					TimeZone: "Europe/London",
					Locale:   "en-GB",
					At:       exampleTime(2 * time.Hour),
				}
			},
		},
		{
			Type:   TypeTenantSuspended,
			New:    func() any { return &TenantSuspended{} },
			Schema: "tenant_suspended.v1.schema.json",
			Example: func() any {
				return &TenantSuspended{
					TenantID: exampleTenant,
					Reason:   "Contract ended; data export pending.",
					At:       exampleTime(30 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeTenantReactivated,
			New:    func() any { return &TenantReactivated{} },
			Schema: "tenant_reactivated.v1.schema.json",
			Example: func() any {
				return &TenantReactivated{
					TenantID: exampleTenant,
					At:       exampleTime(31 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeSlugClaimed,
			New:    func() any { return &SlugClaimed{} },
			Schema: "slug_claimed.v1.schema.json",
			Example: func() any {
				return &SlugClaimed{
					Slug:     "northwind-it",
					TenantID: exampleTenant,
				}
			},
		},
		{
			Type:   TypeUserOnboarded,
			New:    func() any { return &UserOnboarded{} },
			Schema: "user_onboarded.v1.schema.json",
			Example: func() any {
				return &UserOnboarded{
					UserID:      exampleUser,
					TenantID:    exampleTenant,
					Email:       exampleEmail,
					Name:        "Ada Lovelace",
					Roles:       []string{RoleAgent, RoleSupervisor},
					Groups:      []string{exampleGroup1, exampleGroup2},
					Locale:      "en-GB",
					TimeZone:    "Europe/London",
					OnboardedAt: exampleTime(time.Hour),
				}
			},
		},
		{
			Type:   TypeUserUpdated,
			New:    func() any { return &UserUpdated{} },
			Schema: "user_updated.v1.schema.json",
			Example: func() any {
				return &UserUpdated{
					UserID:   exampleUser,
					Name:     "Ada King",
					Locale:   "de-DE",
					TimeZone: "Europe/Berlin",
					At:       exampleTime(3 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserRolesChanged,
			New:    func() any { return &UserRolesChanged{} },
			Schema: "user_roles_changed.v1.schema.json",
			Example: func() any {
				return &UserRolesChanged{
					UserID: exampleUser,
					Roles:  []string{RoleAgent, RoleAdmin},
					At:     exampleTime(4 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserGroupsChanged,
			New:    func() any { return &UserGroupsChanged{} },
			Schema: "user_groups_changed.v1.schema.json",
			Example: func() any {
				return &UserGroupsChanged{
					UserID: exampleUser,
					Groups: []string{exampleGroup1, exampleGroup3},
					At:     exampleTime(5 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserAccessGranted,
			New:    func() any { return &UserAccessGranted{} },
			Schema: "user_access_granted.v1.schema.json",
			Example: func() any {
				return &UserAccessGranted{
					UserID:         exampleUser,
					ClientTenantID: exampleClient,
					Role:           RoleAgent,
					At:             exampleTime(6 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserAccessRevoked,
			New:    func() any { return &UserAccessRevoked{} },
			Schema: "user_access_revoked.v1.schema.json",
			Example: func() any {
				return &UserAccessRevoked{
					UserID:         exampleUser,
					ClientTenantID: exampleClient,
					At:             exampleTime(7 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserSuspended,
			New:    func() any { return &UserSuspended{} },
			Schema: "user_suspended.v1.schema.json",
			Example: func() any {
				return &UserSuspended{
					UserID: exampleUser,
					Reason: "Security review after a phishing report.",
					At:     exampleTime(8 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserReactivated,
			New:    func() any { return &UserReactivated{} },
			Schema: "user_reactivated.v1.schema.json",
			Example: func() any {
				return &UserReactivated{
					UserID: exampleUser,
					At:     exampleTime(9 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeUserOffboarded,
			New:    func() any { return &UserOffboarded{} },
			Schema: "user_offboarded.v1.schema.json",
			Example: func() any {
				return &UserOffboarded{
					UserID: exampleUser,
					Reason: "Left the company.",
					At:     exampleTime(90 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypePasswordChanged,
			New:    func() any { return &PasswordChanged{} },
			Schema: "password_changed.v1.schema.json",
			Example: func() any {
				return &PasswordChanged{
					UserID: exampleUser,
					Reason: PasswordReasonReset,
					At:     exampleTime(10*time.Hour + 20*time.Minute),
				}
			},
		},
		{
			Type:   TypeSessionRevoked,
			New:    func() any { return &SessionRevoked{} },
			Schema: "session_revoked.v1.schema.json",
			Example: func() any {
				return &SessionRevoked{
					UserID:    exampleUser,
					SessionID: exampleSession,
					Reason:    "logout",
					At:        exampleTime(8 * time.Hour),
				}
			},
		},
		{
			Type:   TypeSessionsRevoked,
			New:    func() any { return &SessionsRevoked{} },
			Schema: "sessions_revoked.v1.schema.json",
			Example: func() any {
				return &SessionsRevoked{
					UserID: exampleUser,
					Reason: "password_reset",
					Before: exampleTime(10*time.Hour + 20*time.Minute),
				}
			},
		},
		{
			Type:   TypePasswordResetRequested,
			New:    func() any { return &PasswordResetRequested{} },
			Schema: "password_reset_requested.v1.schema.json",
			Example: func() any {
				return &PasswordResetRequested{
					UserID:      exampleUser,
					ResetID:     exampleReset,
					Email:       exampleEmail,
					Name:        "Ada Lovelace",
					Locale:      "en-GB",
					ExpiresAt:   exampleTime(10*time.Hour + 30*time.Minute),
					SealedToken: "Xlk7Z6qt4Ver5hDGtBqsyAQtPISbAPJ64VpUKgApB8nSSt72yNaGZIyMTdo0Y9Jl7fXGBYvNqHQvIijR",
				}
			},
		},
		{
			Type:   TypeEmailClaimed,
			New:    func() any { return &EmailClaimed{} },
			Schema: "email_claimed.v1.schema.json",
			Example: func() any {
				return &EmailClaimed{
					Email:  exampleEmail,
					UserID: exampleUser,
				}
			},
		},
		{
			Type:   TypeGroupCreated,
			New:    func() any { return &GroupCreated{} },
			Schema: "group_created.v1.schema.json",
			Example: func() any {
				return &GroupCreated{
					GroupID:   exampleGroup1,
					Name:      "Service Desk",
					Tier:      1,
					Skills:    []string{"m365", "printers", "vpn"},
					CreatedAt: exampleTime(30 * time.Minute),
				}
			},
		},
		{
			Type:   TypeGroupUpdated,
			New:    func() any { return &GroupUpdated{} },
			Schema: "group_updated.v1.schema.json",
			Example: func() any {
				return &GroupUpdated{
					GroupID: exampleGroup1,
					Name:    "Service Desk Berlin",
					Tier:    2,
					Skills:  []string{"m365", "networking", "sap.basis"},
					At:      exampleTime(26 * time.Hour),
				}
			},
		},
		{
			Type:   TypeGroupDeleted,
			New:    func() any { return &GroupDeleted{} },
			Schema: "group_deleted.v1.schema.json",
			Example: func() any {
				return &GroupDeleted{
					GroupID: exampleGroup2,
					At:      exampleTime(60 * 24 * time.Hour),
				}
			},
		},
		{
			Type:   TypeAPITokenCreated,
			New:    func() any { return &APITokenCreated{} },
			Schema: "api_token_created.v1.schema.json",
			Example: func() any {
				return &APITokenCreated{
					TokenID:    exampleToken,
					Name:       "Monitoring integration",
					Scopes:     []string{"tickets:read", "tickets:write"},
					CreatedBy:  exampleAdmin,
					ExpiresAt:  exampleTime(365 * 24 * time.Hour),
					SecretHash: "80889fff47bdd205dab67ca381adac80e226c138fb7ac09efa61047a8fd5c19b",
					CreatedAt:  exampleTime(45 * time.Minute),
				}
			},
		},
		{
			Type:   TypeAPITokenRevoked,
			New:    func() any { return &APITokenRevoked{} },
			Schema: "api_token_revoked.v1.schema.json",
			Example: func() any {
				return &APITokenRevoked{
					TokenID:   exampleToken,
					RevokedBy: exampleAdmin,
					At:        exampleTime(120 * 24 * time.Hour),
				}
			},
		},
	}
}
