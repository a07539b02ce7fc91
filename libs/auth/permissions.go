package auth

import identityv1 "github.com/opsdesk/opsdesk/api/events/identity/v1"

// Permission is what a route requires, written "<resource>:<action>". API
// token scopes are permissions too.
type Permission string

// Pseudo-permissions of routes.
const (
	// PermPublic routes take no credential (the token endpoint, JWKS).
	PermPublic Permission = "public"
	// PermAuthenticated routes take any valid credential (GET /v1/me).
	PermAuthenticated Permission = "authenticated"
)

// Permissions.
const (
	PermTicketsCreate   Permission = "tickets:create"
	PermTicketsRead     Permission = "tickets:read"     // one's own tickets (requesters), or all with read_all
	PermTicketsReadAll  Permission = "tickets:read_all" // every ticket of the tenant
	PermTicketsComment  Permission = "tickets:comment"  // reply on one's own tickets, or on all with read_all
	PermTicketsWork     Permission = "tickets:work"     // run the lifecycle, edit, link, write internal notes
	PermIntakeManage    Permission = "intake:manage"    // a tenant's intake settings and quarantine
	PermAlertsIngest    Permission = "alerts:ingest"    // post monitoring alerts
	PermEmailIngest     Permission = "email:ingest"     // post inbound mail (a mail provider's webhook)
	PermUsersRead       Permission = "users:read"
	PermUsersManage     Permission = "users:manage"
	PermGroupsRead      Permission = "groups:read"
	PermGroupsManage    Permission = "groups:manage"
	PermTenantsRead     Permission = "tenants:read"
	PermTenantsManage   Permission = "tenants:manage"
	PermTokensManage    Permission = "tokens:manage"
	PermPlatformOperate Permission = "platform:operate" // admins of the operator tenant: dead letters, rebuilds
)

// Roles, as in the identity events.
const (
	RoleRequester  = identityv1.RoleRequester
	RoleAgent      = identityv1.RoleAgent
	RoleSupervisor = identityv1.RoleSupervisor
	RoleAdmin      = identityv1.RoleAdmin
)

// Roles lists every role, least privileged first.
var Roles = []string{RoleRequester, RoleAgent, RoleSupervisor, RoleAdmin}

// rolePermissions is what each role may do in a tenant. Each role has the
// permissions of the roles before it.
var rolePermissions = func() map[string][]Permission {
	requester := []Permission{PermTicketsCreate, PermTicketsRead, PermTicketsComment, PermTenantsRead}
	agent := append(append([]Permission{}, requester...), PermTicketsReadAll, PermTicketsWork, PermUsersRead, PermGroupsRead)
	supervisor := append(append([]Permission{}, agent...), PermGroupsManage)
	admin := append(append([]Permission{}, supervisor...), PermUsersManage, PermTenantsManage, PermTokensManage,
		PermIntakeManage, PermAlertsIngest, PermEmailIngest)
	return map[string][]Permission{
		RoleRequester:  requester,
		RoleAgent:      agent,
		RoleSupervisor: supervisor,
		RoleAdmin:      admin,
	}
}()

// RolePermissions returns the permissions of role (nil for an unknown one).
func RolePermissions(role string) []Permission {
	return append([]Permission(nil), rolePermissions[role]...)
}

// Scopes are the permissions an API token may carry: what integrations do.
// Managing users, tenants and tokens, and operating the platform, need a
// person.
var Scopes = []Permission{PermTicketsCreate, PermTicketsRead, PermTicketsReadAll, PermTicketsComment, PermTicketsWork,
	PermAlertsIngest, PermEmailIngest, PermUsersRead, PermGroupsRead, PermTenantsRead}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { _, ok := rolePermissions[r]; return ok }

// ValidScope reports whether s may be an API token scope.
func ValidScope(s string) bool {
	for _, p := range Scopes {
		if string(p) == s {
			return true
		}
	}
	return false
}
