package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/services/identity/internal/domain"
)

// Page limits of the list queries.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// ErrBadCursor: the cursor is not one this API issued (400).
var ErrBadCursor = errors.New("invalid cursor")

// Cursor is a keyset position: the sort key and id of the last item.
type Cursor struct {
	Key string `json:"k"`
	ID  string `json:"i"`
}

// Encode returns the opaque form clients pass back.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses Encode's form.
func DecodeCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c Cursor
	if err != nil || len(s) > 1024 || json.Unmarshal(b, &c) != nil || c.ID == "" {
		return nil, ErrBadCursor
	}
	return &c, nil
}

// Page is one page of a list and the cursor of the next (nil on the last).
type Page[T any] struct {
	Items []T
	Next  *Cursor
}

// TenantView is a tenant as the API shows it.
type TenantView struct {
	ID, Slug, Name, Kind, TimeZone, Locale, Status string
	ParentID                                       *string
	Operator                                       bool
	CreatedAt, UpdatedAt                           time.Time
	Version                                        int64
}

// UserView is a user as the API shows it.
type UserView struct {
	ID, TenantID, Email, Name, Locale, TimeZone, Status string
	Roles, Groups                                       []string
	Grants                                              []Grant
	CreatedAt, UpdatedAt                                time.Time
	Version                                             int64
}

// Grant is a client tenant a user may act in.
type Grant struct{ TenantID, Role string }

// GroupView is a group as the API shows it.
type GroupView struct {
	ID, Name             string
	Tier                 int
	Skills               []string
	MemberCount          int
	CreatedAt, UpdatedAt time.Time
	Version              int64
}

// APITokenView is an API token as the API shows it (never its secret).
type APITokenView struct {
	ID, Name, CreatedBy              string
	Scopes                           []string
	CreatedAt                        time.Time
	ExpiresAt, RevokedAt, LastUsedAt *time.Time
}

func limitOf(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// query builds a tenant-filtered SELECT with numbered arguments.
type query struct {
	where []string
	args  []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) and(cond string, v ...any) {
	for _, x := range v {
		cond = strings.Replace(cond, "?", q.arg(x), 1)
	}
	q.where = append(q.where, cond)
}

func (q *query) sql() string { return strings.Join(q.where, " AND ") }

// order is how a list is sorted: by a column, ties broken by id.
type order struct {
	col  string
	desc bool
	// arg turns a cursor's key back into the column's type (nil: text).
	arg func(string) (any, error)
}

// list runs a paged query in the tenant's transaction; key extracts an
// item's sort key and id for the next page's cursor.
func list[T any](ctx context.Context, a *App, tenant string, q query, cols, from string, o order, limit int, after *Cursor,
	scan func(pgx.Row) (T, error), key func(T) (string, string)) (Page[T], error) {
	limit = limitOf(limit)
	dir, cmp := "", ">"
	if o.desc {
		dir, cmp = " DESC", "<"
	}
	if after != nil {
		var k any = after.Key
		if o.arg != nil {
			var err error
			if k, err = o.arg(after.Key); err != nil {
				return Page[T]{}, ErrBadCursor
			}
		}
		q.and("("+o.col+", id) "+cmp+" (?, ?)", k, after.ID)
	}
	sql := "SELECT " + cols + " FROM " + from + " WHERE " + q.sql() + " ORDER BY " + o.col + dir + ", id" + dir + " LIMIT " + q.arg(limit+1)
	var items []T
	err := a.inTenant(ctx, tenant, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, sql, q.args...)
		var err error
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
		return err
	})
	if err != nil {
		return Page[T]{}, fmt.Errorf("list: %w", err)
	}
	page := Page[T]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		k, id := key(page.Items[limit-1])
		page.Next = &Cursor{Key: k, ID: id}
	}
	return page, nil
}

const tenantCols = `id, slug, name, kind, parent_id, operator, time_zone, locale, status, created_at, updated_at, version`

func scanTenant(r pgx.Row) (TenantView, error) {
	var t TenantView
	err := r.Scan(&t.ID, &t.Slug, &t.Name, &t.Kind, &t.ParentID, &t.Operator, &t.TimeZone, &t.Locale, &t.Status,
		&t.CreatedAt, &t.UpdatedAt, &t.Version)
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, err
}

// ListTenants lists p's tenant and its children, by slug.
func (a *App) ListTenants(ctx context.Context, p auth.Principal, status string, limit int, after *Cursor) (Page[TenantView], error) {
	q := query{}
	q.and("(id = ? OR parent_id = ?)", p.Tenant, p.Tenant)
	if status != "" {
		q.and("status = ?", status)
	}
	return list(ctx, a, p.Tenant, q, tenantCols, "identity.tenants", order{col: "slug"}, limit, after, scanTenant,
		func(t TenantView) (string, string) { return t.Slug, t.ID })
}

// GetTenant returns p's tenant or one of its children.
func (a *App) GetTenant(ctx context.Context, p auth.Principal, id string) (TenantView, error) {
	var t TenantView
	err := a.inTenant(ctx, p.Tenant, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM identity.tenants
			WHERE id = $1 AND (id = $2 OR parent_id = $2)`, id, p.Tenant))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return TenantView{}, domain.ErrNotFound
	}
	return t, err
}

const userCols = `id, tenant_id, email, name, roles, groups, locale, time_zone, status, created_at, updated_at, version,
	coalesce((SELECT array_agg(client_tenant_id || ':' || role ORDER BY client_tenant_id) FROM identity.user_grants g
	          WHERE g.tenant_id = users.tenant_id AND g.user_id = users.id), '{}')`

func scanUser(r pgx.Row) (UserView, error) {
	var (
		u      UserView
		grants []string
	)
	err := r.Scan(&u.ID, &u.TenantID, &u.Email, &u.Name, &u.Roles, &u.Groups, &u.Locale, &u.TimeZone, &u.Status,
		&u.CreatedAt, &u.UpdatedAt, &u.Version, &grants)
	for _, g := range grants {
		t, role, _ := strings.Cut(g, ":")
		u.Grants = append(u.Grants, Grant{TenantID: t, Role: role})
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

// UserFilter narrows ListUsers.
type UserFilter struct {
	Status, Role, Group, Query string
	Limit                      int
	After                      *Cursor
}

// ListUsers lists the users of p's tenant, by name.
func (a *App) ListUsers(ctx context.Context, p auth.Principal, f UserFilter) (Page[UserView], error) {
	q := query{}
	q.and("tenant_id = ?", p.Tenant)
	if f.Status != "" {
		q.and("status = ?", f.Status)
	}
	if f.Role != "" {
		q.and("? = ANY (roles)", f.Role)
	}
	if f.Group != "" {
		q.and("groups @> ARRAY[?]::text[]", f.Group)
	}
	if f.Query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(f.Query) + "%"
		q.and("(name ILIKE ? OR email ILIKE ?)", like, like)
	}
	return list(ctx, a, p.Tenant, q, userCols, "identity.users", order{col: "name"}, f.Limit, f.After, scanUser,
		func(u UserView) (string, string) { return u.Name, u.ID })
}

// GetUser returns a user of p's tenant.
func (a *App) GetUser(ctx context.Context, p auth.Principal, id string) (UserView, error) {
	var u UserView
	err := a.inTenant(ctx, p.Tenant, func(tx pgx.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM identity.users WHERE tenant_id = $1 AND id = $2`, p.Tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return UserView{}, domain.ErrNotFound
	}
	return u, err
}

const groupCols = `id, name, tier, skills, created_at, updated_at, version,
	(SELECT count(*) FROM identity.users u WHERE u.tenant_id = groups.tenant_id AND groups.id = ANY (u.groups) AND u.status <> 'offboarded')`

func scanGroup(r pgx.Row) (GroupView, error) {
	var g GroupView
	err := r.Scan(&g.ID, &g.Name, &g.Tier, &g.Skills, &g.CreatedAt, &g.UpdatedAt, &g.Version, &g.MemberCount)
	g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	return g, err
}

// GroupFilter narrows ListGroups.
type GroupFilter struct {
	Query, Skill string
	Tier         int
	Limit        int
	After        *Cursor
}

// ListGroups lists the groups of p's tenant, by name.
func (a *App) ListGroups(ctx context.Context, p auth.Principal, f GroupFilter) (Page[GroupView], error) {
	q := query{}
	q.and("tenant_id = ?", p.Tenant)
	if f.Tier != 0 {
		q.and("tier = ?", f.Tier)
	}
	if f.Skill != "" {
		q.and("? = ANY (skills)", f.Skill)
	}
	if f.Query != "" {
		q.and("name ILIKE ?", "%"+strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(f.Query)+"%")
	}
	return list(ctx, a, p.Tenant, q, groupCols, "identity.groups", order{col: "name"}, f.Limit, f.After, scanGroup,
		func(g GroupView) (string, string) { return g.Name, g.ID })
}

// GetGroup returns a group of p's tenant.
func (a *App) GetGroup(ctx context.Context, p auth.Principal, id string) (GroupView, error) {
	var g GroupView
	err := a.inTenant(ctx, p.Tenant, func(tx pgx.Tx) error {
		var err error
		g, err = scanGroup(tx.QueryRow(ctx, `SELECT `+groupCols+` FROM identity.groups WHERE tenant_id = $1 AND id = $2`, p.Tenant, id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return GroupView{}, domain.ErrNotFound
	}
	return g, err
}

// ListMembers lists a group's members, by name.
func (a *App) ListMembers(ctx context.Context, p auth.Principal, group string, limit int, after *Cursor) (Page[UserView], error) {
	if _, err := a.GetGroup(ctx, p, group); err != nil {
		return Page[UserView]{}, err
	}
	return a.ListUsers(ctx, p, UserFilter{Group: group, Limit: limit, After: after})
}

const tokenCols = `id, name, created_by, scopes, created_at, expires_at, revoked_at,
	(SELECT last_used_at FROM identity.api_token_usage u WHERE u.tenant_id = api_tokens.tenant_id AND u.token_id = api_tokens.id)`

// ListAPITokens lists the API tokens of p's tenant, newest first.
func (a *App) ListAPITokens(ctx context.Context, p auth.Principal, limit int, after *Cursor) (Page[APITokenView], error) {
	q := query{}
	q.and("tenant_id = ?", p.Tenant)
	newest := order{col: "created_at", desc: true, arg: func(k string) (any, error) { return time.Parse(time.RFC3339Nano, k) }}
	return list(ctx, a, p.Tenant, q, tokenCols, "identity.api_tokens", newest, limit, after,
		func(r pgx.Row) (APITokenView, error) {
			var t APITokenView
			err := r.Scan(&t.ID, &t.Name, &t.CreatedBy, &t.Scopes, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt)
			t.CreatedAt = t.CreatedAt.UTC()
			return t, err
		},
		func(t APITokenView) (string, string) {
			return t.CreatedAt.Format(time.RFC3339Nano), t.ID
		})
}
