// Package httpport is identity's HTTP port: Echo handlers implementing the
// ServerInterface generated from api/openapi/identity.yaml, the OAuth 2.0
// token endpoint's own decoder, and the one place where application errors
// become problem+json answers.
package httpport

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/httpx"
	"github.com/opsdesk/opsdesk/services/identity/internal/app"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// HeaderConsistencyToken carries the stream sequence of a write.
const HeaderConsistencyToken = "X-Consistency-Token"

// Server implements the generated ServerInterface.
type Server struct {
	app *app.App
}

var _ ServerInterface = (*Server)(nil)

// NewServer returns the HTTP port over the application layer.
func NewServer(a *app.App) *Server { return &Server{app: a} }

// principal is the verified caller (the auth middleware ran first).
func principal(c echo.Context) auth.Principal {
	p, _ := auth.FromContext(c.Request().Context())
	return p
}

// ctx carries who acts and the request id into the events.
func ctx(c echo.Context) context.Context {
	return app.WithMeta(c.Request().Context(), app.Meta{Actor: principal(c).Actor(), CorrelationID: httpx.RequestID(c)})
}

func bind(c echo.Context, into any) error {
	return (&echo.DefaultBinder{}).BindBody(c, into)
}

// wait honours an X-Consistency-Token before a read.
func (s *Server) wait(c echo.Context, token *string) error {
	if token == nil || *token == "" {
		return nil
	}
	seq, err := strconv.ParseUint(*token, 10, 64)
	if err != nil {
		return badField("header."+HeaderConsistencyToken, "must be a stream sequence from an earlier write")
	}
	return problem(c, s.app.WaitFor(c.Request().Context(), seq))
}

// written sets the headers of a write's answer.
func written(c echo.Context, res app.Result) {
	if res.Sequence > 0 {
		c.Response().Header().Set(HeaderConsistencyToken, strconv.FormatUint(res.Sequence, 10))
	}
}

func etag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// ifMatch parses If-Match: a version ("3") or *, which matches any.
func ifMatch(h *string) (*uint64, error) {
	if h == nil || strings.TrimSpace(*h) == "*" || *h == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(strings.TrimPrefix(*h, "W/")), `"`), 10, 64)
	if err != nil {
		return nil, badField("header.If-Match", `must be an ETag of this resource, e.g. "3"`)
	}
	return &v, nil
}

func limit(l *int) int {
	if l == nil {
		return 0
	}
	return *l
}

func cursor(s *string) (*app.Cursor, error) {
	if s == nil {
		return nil, nil
	}
	cur, err := app.DecodeCursor(*s)
	if err != nil {
		return nil, badField("query.cursor", "is not a cursor this API issued")
	}
	return cur, nil
}

func next(c *app.Cursor) *string {
	if c == nil {
		return nil
	}
	s := c.Encode()
	return &s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// refresh waits for a write to reach the read model, so the answer shows
// it (bounded: 503 if the read model is behind).
func (s *Server) refresh(c echo.Context, res app.Result) error {
	return problem(c, s.app.WaitFor(c.Request().Context(), res.Sequence))
}

// ---- auth ----

// IssueToken handles POST /v1/auth/token.
func (s *Server) IssueToken(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	req, err := decodeTokenRequest(c.Request().Header.Get(echo.HeaderContentType), c.Request().Body)
	if err != nil {
		return err
	}
	var t app.Tokens
	switch req.GrantType {
	case "password":
		t, err = s.app.PasswordGrant(ctx(c), req.Tenant, req.Username, req.Password, c.RealIP())
	default:
		t, err = s.app.RefreshGrant(ctx(c), req.RefreshToken)
	}
	if err != nil {
		return problem(c, err)
	}
	return c.JSON(http.StatusOK, TokenResponse{
		AccessToken: t.Access, TokenType: TokenTypeBearer, ExpiresIn: int(t.ExpiresIn / time.Second), RefreshToken: t.Refresh,
	})
}

// Logout handles POST /v1/auth/logout.
func (s *Server) Logout(c echo.Context, _ LogoutParams) error {
	res, err := s.app.Logout(ctx(c), principal(c))
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}

// RequestPasswordReset handles POST /v1/auth/password-reset.
func (s *Server) RequestPasswordReset(c echo.Context) error {
	var req PasswordResetRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	if err := s.app.RequestPasswordReset(ctx(c), req.Tenant, string(req.Email), c.RealIP()); err != nil {
		return problem(c, err)
	}
	return c.NoContent(http.StatusAccepted)
}

// CompletePasswordReset handles POST /v1/auth/password-reset/complete.
func (s *Server) CompletePasswordReset(c echo.Context) error {
	var req CompletePasswordResetRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	if req.Password == nil {
		return badField("password", "is required")
	}
	if err := s.app.CompletePasswordReset(ctx(c), req.Token, *req.Password); err != nil {
		return problem(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// GetJWKS handles GET /.well-known/jwks.json.
func (s *Server) GetJWKS(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.app.JWKS())
}

// GetMe handles GET /v1/me.
func (s *Server) GetMe(c echo.Context, _ GetMeParams) error {
	p := principal(c)
	me := Me{Id: p.ID, Kind: MeKind(p.Kind), TenantId: p.Tenant, HomeTenantId: p.HomeTenant, Acting: p.Acting,
		Roles: []Role{}, Scopes: []Scope{}, Permissions: []string{}}
	for _, r := range p.Roles {
		me.Roles = append(me.Roles, Role(r))
	}
	for _, sc := range p.Scopes {
		me.Scopes = append(me.Scopes, Scope(sc))
	}
	for _, perm := range auth.AllPermissions {
		if perm != auth.PermPublic && perm != auth.PermAuthenticated && p.Can(perm) {
			me.Permissions = append(me.Permissions, string(perm))
		}
	}
	if p.Email != "" {
		me.Email = &p.Email
	}
	if p.Name != "" {
		me.Name = &p.Name
	}
	return c.JSON(http.StatusOK, me)
}

// ---- tenants ----

func tenantOut(t app.TenantView) Tenant {
	return Tenant{Id: t.ID, Slug: t.Slug, Name: t.Name, Kind: TenantKind(t.Kind), ParentId: t.ParentID, Operator: t.Operator,
		TimeZone: t.TimeZone, Locale: t.Locale, Status: TenantStatus(t.Status), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		Version: t.Version}
}

func (s *Server) tenant(c echo.Context, status int, id string) error {
	t, err := s.app.GetTenant(c.Request().Context(), principal(c), id)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set("ETag", etag(t.Version))
	return c.JSON(status, tenantOut(t))
}

// ListTenants handles GET /v1/tenants.
func (s *Server) ListTenants(c echo.Context, p ListTenantsParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	cur, err := cursor(p.Cursor)
	if err != nil {
		return err
	}
	status := ""
	if p.Status != nil {
		status = string(*p.Status)
	}
	page, err := s.app.ListTenants(c.Request().Context(), principal(c), status, limit(p.Limit), cur)
	if err != nil {
		return problem(c, err)
	}
	out := TenantPage{Items: make([]Tenant, len(page.Items)), NextCursor: next(page.Next)}
	for i, t := range page.Items {
		out.Items[i] = tenantOut(t)
	}
	return c.JSON(http.StatusOK, out)
}

// CreateTenant handles POST /v1/tenants.
func (s *Server) CreateTenant(c echo.Context, _ CreateTenantParams) error {
	var req CreateTenantRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	t, res, err := s.app.CreateTenant(ctx(c), principal(c), app.NewTenant{Slug: req.Slug, Name: req.Name, TimeZone: req.TimeZone, Locale: req.Locale})
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	if err := s.refresh(c, res); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/tenants/"+t.ID)
	return s.tenant(c, http.StatusCreated, t.ID)
}

// GetTenant handles GET /v1/tenants/{tenant_id}.
func (s *Server) GetTenant(c echo.Context, id TenantIDPath, p GetTenantParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	return s.tenant(c, http.StatusOK, id)
}

// UpdateTenant handles PATCH /v1/tenants/{tenant_id}.
func (s *Server) UpdateTenant(c echo.Context, id TenantIDPath, p UpdateTenantParams) error {
	var req UpdateTenantRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	v, err := ifMatch(p.IfMatch)
	if err != nil {
		return err
	}
	res, err := s.app.UpdateTenant(ctx(c), principal(c), id, v, domain.UpdateTenant{Name: req.Name, TimeZone: req.TimeZone, Locale: req.Locale})
	return s.afterWrite(c, res, err, func() error { return s.tenant(c, http.StatusOK, id) })
}

// SuspendTenant handles POST /v1/tenants/{tenant_id}/suspend.
func (s *Server) SuspendTenant(c echo.Context, id TenantIDPath, _ SuspendTenantParams) error {
	reason, err := reasonOf(c)
	if err != nil {
		return err
	}
	res, err := s.app.SuspendTenant(ctx(c), principal(c), id, reason)
	return s.afterWrite(c, res, err, func() error { return s.tenant(c, http.StatusOK, id) })
}

// ReactivateTenant handles POST /v1/tenants/{tenant_id}/reactivate.
func (s *Server) ReactivateTenant(c echo.Context, id TenantIDPath, _ ReactivateTenantParams) error {
	res, err := s.app.ReactivateTenant(ctx(c), principal(c), id)
	return s.afterWrite(c, res, err, func() error { return s.tenant(c, http.StatusOK, id) })
}

// afterWrite answers a write: its error, or the resource as the read model
// shows it once the write has reached it.
func (s *Server) afterWrite(c echo.Context, res app.Result, err error, show func() error) error {
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	if err := s.refresh(c, res); err != nil {
		return err
	}
	return show()
}

// reasonOf reads an optional {reason} body.
func reasonOf(c echo.Context) (string, error) {
	if c.Request().ContentLength == 0 {
		return "", nil
	}
	var req ReasonRequest
	if err := bind(c, &req); err != nil {
		return "", err
	}
	return str(req.Reason), nil
}

// ---- users ----

func userOut(u app.UserView) User {
	out := User{Id: u.ID, TenantId: u.TenantID, Email: u.Email, Name: u.Name, Locale: u.Locale, TimeZone: u.TimeZone,
		Status: UserStatus(u.Status), CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, Version: u.Version,
		Roles: []Role{}, Groups: append([]string{}, u.Groups...), Grants: []Grant{}}
	for _, r := range u.Roles {
		out.Roles = append(out.Roles, Role(r))
	}
	for _, g := range u.Grants {
		out.Grants = append(out.Grants, Grant{TenantId: g.TenantID, Role: Role(g.Role)})
	}
	return out
}

func (s *Server) user(c echo.Context, status int, id string) error {
	u, err := s.app.GetUser(c.Request().Context(), principal(c), id)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set("ETag", etag(u.Version))
	return c.JSON(status, userOut(u))
}

func roles(r []Role) []string {
	out := make([]string, len(r))
	for i, x := range r {
		out[i] = string(x)
	}
	return out
}

// ListUsers handles GET /v1/users.
func (s *Server) ListUsers(c echo.Context, p ListUsersParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	cur, err := cursor(p.Cursor)
	if err != nil {
		return err
	}
	f := app.UserFilter{Group: str(p.Group), Query: str(p.Q), Limit: limit(p.Limit), After: cur}
	if p.Status != nil {
		f.Status = string(*p.Status)
	}
	if p.Role != nil {
		f.Role = string(*p.Role)
	}
	page, err := s.app.ListUsers(c.Request().Context(), principal(c), f)
	if err != nil {
		return problem(c, err)
	}
	return c.JSON(http.StatusOK, userPage(page))
}

func userPage(page app.Page[app.UserView]) UserPage {
	out := UserPage{Items: make([]User, len(page.Items)), NextCursor: next(page.Next)}
	for i, u := range page.Items {
		out.Items[i] = userOut(u)
	}
	return out
}

// OnboardUser handles POST /v1/users.
func (s *Server) OnboardUser(c echo.Context, _ OnboardUserParams) error {
	var req OnboardUserRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	nu := app.NewUser{Email: string(req.Email), Name: req.Name, Roles: roles(req.Roles), Locale: str(req.Locale),
		TimeZone: str(req.TimeZone), Password: str(req.Password)}
	if req.Groups != nil {
		nu.Groups = *req.Groups
	}
	u, res, err := s.app.Onboard(ctx(c), principal(c), nu)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	if err := s.refresh(c, res); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/users/"+u.ID)
	return s.user(c, http.StatusCreated, u.ID)
}

// GetUser handles GET /v1/users/{user_id}.
func (s *Server) GetUser(c echo.Context, id UserIDPath, p GetUserParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	return s.user(c, http.StatusOK, id)
}

// UpdateUser handles PATCH /v1/users/{user_id}.
func (s *Server) UpdateUser(c echo.Context, id UserIDPath, p UpdateUserParams) error {
	var req UpdateUserRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	v, err := ifMatch(p.IfMatch)
	if err != nil {
		return err
	}
	upd := domain.UpdateUser{Name: req.Name, Locale: req.Locale, TimeZone: req.TimeZone, Groups: req.Groups}
	if req.Roles != nil {
		r := roles(*req.Roles)
		upd.Roles = &r
	}
	res, err := s.app.UpdateUser(ctx(c), principal(c), id, v, upd)
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// SuspendUser handles POST /v1/users/{user_id}/suspend.
func (s *Server) SuspendUser(c echo.Context, id UserIDPath, _ SuspendUserParams) error {
	reason, err := reasonOf(c)
	if err != nil {
		return err
	}
	res, err := s.app.SuspendUser(ctx(c), principal(c), id, reason)
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// ReactivateUser handles POST /v1/users/{user_id}/reactivate.
func (s *Server) ReactivateUser(c echo.Context, id UserIDPath, _ ReactivateUserParams) error {
	res, err := s.app.ReactivateUser(ctx(c), principal(c), id)
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// OffboardUser handles POST /v1/users/{user_id}/offboard.
func (s *Server) OffboardUser(c echo.Context, id UserIDPath, _ OffboardUserParams) error {
	reason, err := reasonOf(c)
	if err != nil {
		return err
	}
	res, err := s.app.OffboardUser(ctx(c), principal(c), id, reason)
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// SetUserPassword handles PUT /v1/users/{user_id}/password.
func (s *Server) SetUserPassword(c echo.Context, id UserIDPath, _ SetUserPasswordParams) error {
	var req SetPasswordRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	if req.Password == nil {
		return badField("password", "is required")
	}
	res, err := s.app.SetUserPassword(ctx(c), principal(c), id, *req.Password)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}

// GrantAccess handles PUT /v1/users/{user_id}/grants/{tenant_id}.
func (s *Server) GrantAccess(c echo.Context, id UserIDPath, tenant TenantIDPath, _ GrantAccessParams) error {
	var req GrantAccessRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	res, err := s.app.GrantAccess(ctx(c), principal(c), id, tenant, string(req.Role))
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// RevokeAccess handles DELETE /v1/users/{user_id}/grants/{tenant_id}.
func (s *Server) RevokeAccess(c echo.Context, id UserIDPath, tenant TenantIDPath, _ RevokeAccessParams) error {
	res, err := s.app.RevokeAccess(ctx(c), principal(c), id, tenant)
	return s.afterWrite(c, res, err, func() error { return s.user(c, http.StatusOK, id) })
}

// ---- groups ----

func groupOut(g app.GroupView) Group {
	return Group{Id: g.ID, Name: g.Name, Tier: g.Tier, Skills: append([]string{}, g.Skills...), MemberCount: g.MemberCount,
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt, Version: g.Version}
}

func (s *Server) group(c echo.Context, status int, id string) error {
	g, err := s.app.GetGroup(c.Request().Context(), principal(c), id)
	if err != nil {
		return problem(c, err)
	}
	c.Response().Header().Set("ETag", etag(g.Version))
	return c.JSON(status, groupOut(g))
}

// ListGroups handles GET /v1/groups.
func (s *Server) ListGroups(c echo.Context, p ListGroupsParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	cur, err := cursor(p.Cursor)
	if err != nil {
		return err
	}
	f := app.GroupFilter{Query: str(p.Q), Skill: str(p.Skill), Limit: limit(p.Limit), After: cur}
	if p.Tier != nil {
		f.Tier = *p.Tier
	}
	page, err := s.app.ListGroups(c.Request().Context(), principal(c), f)
	if err != nil {
		return problem(c, err)
	}
	out := GroupPage{Items: make([]Group, len(page.Items)), NextCursor: next(page.Next)}
	for i, g := range page.Items {
		out.Items[i] = groupOut(g)
	}
	return c.JSON(http.StatusOK, out)
}

// CreateGroup handles POST /v1/groups.
func (s *Server) CreateGroup(c echo.Context, _ CreateGroupParams) error {
	var req CreateGroupRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	var skills []string
	if req.Skills != nil {
		skills = *req.Skills
	}
	g, res, err := s.app.CreateGroup(ctx(c), principal(c), req.Name, req.Tier, skills)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	if err := s.refresh(c, res); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/groups/"+g.ID)
	return s.group(c, http.StatusCreated, g.ID)
}

// GetGroup handles GET /v1/groups/{group_id}.
func (s *Server) GetGroup(c echo.Context, id GroupIDPath, p GetGroupParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	return s.group(c, http.StatusOK, id)
}

// UpdateGroup handles PATCH /v1/groups/{group_id}.
func (s *Server) UpdateGroup(c echo.Context, id GroupIDPath, p UpdateGroupParams) error {
	var req UpdateGroupRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	v, err := ifMatch(p.IfMatch)
	if err != nil {
		return err
	}
	res, err := s.app.UpdateGroup(ctx(c), principal(c), id, v, domain.UpdateGroup{Name: req.Name, Tier: req.Tier, Skills: req.Skills})
	return s.afterWrite(c, res, err, func() error { return s.group(c, http.StatusOK, id) })
}

// DeleteGroup handles DELETE /v1/groups/{group_id}.
func (s *Server) DeleteGroup(c echo.Context, id GroupIDPath, _ DeleteGroupParams) error {
	res, err := s.app.DeleteGroup(ctx(c), principal(c), id)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}

// ListGroupMembers handles GET /v1/groups/{group_id}/members.
func (s *Server) ListGroupMembers(c echo.Context, id GroupIDPath, p ListGroupMembersParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	cur, err := cursor(p.Cursor)
	if err != nil {
		return err
	}
	page, err := s.app.ListMembers(c.Request().Context(), principal(c), id, limit(p.Limit), cur)
	if err != nil {
		return problem(c, err)
	}
	return c.JSON(http.StatusOK, userPage(page))
}

// AddGroupMember handles PUT /v1/groups/{group_id}/members/{user_id}.
func (s *Server) AddGroupMember(c echo.Context, id GroupIDPath, user UserIDPath, _ AddGroupMemberParams) error {
	res, err := s.app.AddMember(ctx(c), principal(c), id, user)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}

// RemoveGroupMember handles DELETE /v1/groups/{group_id}/members/{user_id}.
func (s *Server) RemoveGroupMember(c echo.Context, id GroupIDPath, user UserIDPath, _ RemoveGroupMemberParams) error {
	res, err := s.app.RemoveMember(ctx(c), principal(c), id, user)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}

// ---- API tokens ----

func tokenOut(t app.APITokenView) APIToken {
	out := APIToken{Id: t.ID, Name: t.Name, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt, Scopes: []Scope{}}
	for _, sc := range t.Scopes {
		out.Scopes = append(out.Scopes, Scope(sc))
	}
	return out
}

// ListAPITokens handles GET /v1/api-tokens.
func (s *Server) ListAPITokens(c echo.Context, p ListAPITokensParams) error {
	if err := s.wait(c, p.XConsistencyToken); err != nil {
		return err
	}
	cur, err := cursor(p.Cursor)
	if err != nil {
		return err
	}
	page, err := s.app.ListAPITokens(c.Request().Context(), principal(c), limit(p.Limit), cur)
	if err != nil {
		return problem(c, err)
	}
	out := APITokenPage{Items: make([]APIToken, len(page.Items)), NextCursor: next(page.Next)}
	for i, t := range page.Items {
		out.Items[i] = tokenOut(t)
	}
	return c.JSON(http.StatusOK, out)
}

// CreateAPIToken handles POST /v1/api-tokens.
func (s *Server) CreateAPIToken(c echo.Context, _ CreateAPITokenParams) error {
	var req CreateAPITokenRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	nt := app.NewAPIToken{Name: req.Name}
	for _, sc := range req.Scopes {
		nt.Scopes = append(nt.Scopes, string(sc))
	}
	if req.ExpiresAt != nil {
		nt.ExpiresAt = *req.ExpiresAt
	}
	t, res, err := s.app.CreateAPIToken(ctx(c), principal(c), nt)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set(echo.HeaderLocation, "/v1/api-tokens/"+t.Token.ID)
	out := CreatedAPIToken{Id: t.Token.ID, Name: t.Token.Name, CreatedBy: t.Token.CreatedBy, CreatedAt: t.At,
		Token: t.Secret, Scopes: []Scope{}}
	for _, sc := range t.Token.Scopes {
		out.Scopes = append(out.Scopes, Scope(sc))
	}
	if !t.Token.ExpiresAt.IsZero() {
		exp := t.Token.ExpiresAt
		out.ExpiresAt = &exp
	}
	return c.JSON(http.StatusCreated, out)
}

// RevokeAPIToken handles DELETE /v1/api-tokens/{token_id}.
func (s *Server) RevokeAPIToken(c echo.Context, id APITokenIDPath, _ RevokeAPITokenParams) error {
	res, err := s.app.RevokeAPIToken(ctx(c), principal(c), id)
	if err != nil {
		return problem(c, err)
	}
	written(c, res)
	return c.NoContent(http.StatusNoContent)
}
