// Package query holds intake's read side: the views the API serves, the
// read-model interface the projections implement, and the handler that
// honours consistency tokens (read-your-writes) before reading.
package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors of the read side.
var (
	// ErrNotFound: no such ticket in the tenant (another tenant's ticket
	// included). Ports answer 404.
	ErrNotFound = errors.New("ticket not found")
	// ErrNotCaughtUp: the read model did not reach the consistency token
	// within the wait. Ports answer 503 with Retry-After.
	ErrNotCaughtUp = errors.New("read model has not caught up with the consistency token")
	// ErrBadCursor: the cursor is not one this service issued. Ports answer 400.
	ErrBadCursor = errors.New("invalid cursor")
)

// Ticket is the read model of one ticket.
type Ticket struct {
	ID          string
	Number      string
	Type        string
	Status      string
	Title       string
	Description string
	Impact      string
	Urgency     string
	Priority    string
	Requester   string
	RequesterID string // "" when the requester is not a known user
	Channel     string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Version     int64

	Category        string
	Tags            []string
	ConfigItems     []string
	Watchers        []string
	CustomFields    json.RawMessage
	AssigneeID      string
	PendingReason   string
	ResolutionCode  string
	ResolutionNote  string
	ResolvedAt      *time.Time
	AutoCloseAt     *time.Time
	ReopenUntil     *time.Time
	ClosedAt        *time.Time
	FirstResponseAt *time.Time
	MergedInto      string
	FollowUpOf      string
	Satisfaction    *int
	Comments        int
	Attachments     int
	Links           []Link
}

// Link is one link of a ticket to another.
type Link struct {
	Kind, TargetID, TargetNumber string
	CreatedAt                    time.Time
}

// Comment is one public reply or internal note.
type Comment struct {
	ID, Body, AuthorID, Author, AuthorRole, Channel string
	Internal                                        bool
	CreatedAt                                       time.Time
}

// Attachment is one attached file's metadata.
type Attachment struct {
	ID, BlobID, Filename, ContentType, SHA256, CommentID string
	Size                                                 int64
	Internal, Inline                                     bool
	CreatedAt                                            time.Time
}

// Counts is the number of tickets per status.
type Counts map[string]int

// Scope is whose tickets a query may see: the tenant's, and when Requester
// is set only those that user requested (a requester's own).
type Scope struct {
	Tenant    string
	Requester string
}

// Event is one entry of a ticket's history.
type Event struct {
	ID       string
	Type     string
	Time     time.Time
	Actor    string
	Sequence int64
	Version  int64
	Data     json.RawMessage
	TraceID  string
	Internal bool
}

// Filter selects a page of tickets, newest first.
type Filter struct {
	Status        string     // "" for any
	Type          string     // "" for any
	Requester     string     // requester's user id or address, "" for any
	Assignee      string     // assignee's user id, "" for any
	Tags          []string   // tickets carrying every one of these
	Priority      string     // "" for any
	Query         string     // full-text query, "" for none
	CreatedAfter  *time.Time // inclusive
	CreatedBefore *time.Time // exclusive
	Limit         int        // page size; DefaultLimit when 0
	After         *Cursor    // position after which the page starts
}

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Page is one page of tickets and the cursor of the next (nil on the last).
type Page struct {
	Items []Ticket
	Next  *Cursor
}

// Cursor is a keyset position in the (created_at DESC, id DESC) order.
type Cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"i"`
}

// Encode returns the opaque form clients pass back.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c) // cannot fail: a time and a string
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor from Encode; anything else wraps ErrBadCursor.
func DecodeCursor(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.ID == "" || c.CreatedAt.IsZero() {
		return Cursor{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return c, nil
}

// ReadModel is the tickets read model, scoped in every method: a ticket
// out of scope is ErrNotFound, like one that does not exist.
type ReadModel interface {
	// Ticket finds a ticket by id (tk_...) or number (OPS-n); ErrNotFound.
	Ticket(ctx context.Context, s Scope, ref string) (Ticket, error)
	// List returns one page of the scope's tickets matching f.
	List(ctx context.Context, s Scope, f Filter) (Page, error)
	// Events returns a ticket's history, oldest first; ErrNotFound. A
	// requester's scope leaves out internal events.
	Events(ctx context.Context, s Scope, ref string) ([]Event, error)
	// Counts returns the scope's tickets per status.
	Counts(ctx context.Context, s Scope) (Counts, error)
	// Comments returns a ticket's comments, oldest first (a requester's
	// scope: public ones only); ErrNotFound.
	Comments(ctx context.Context, s Scope, ref string) ([]Comment, error)
	// Attachments returns a ticket's attachments, oldest first (a
	// requester's scope: public ones only); ErrNotFound.
	Attachments(ctx context.Context, s Scope, ref string) ([]Attachment, error)
	// Attachment returns one attachment of a ticket; ErrNotFound.
	Attachment(ctx context.Context, s Scope, ref, id string) (Attachment, error)
}

// Waiter reports when the read model has applied a stream sequence.
type Waiter interface {
	// WaitFor returns nil once the read model reached seq, or ctx's error.
	WaitFor(ctx context.Context, seq uint64) error
}

// Handler answers queries from the read model, first waiting (at most
// maxWait) for a consistency token when one is given.
type Handler struct {
	rm      ReadModel
	waiter  Waiter
	maxWait time.Duration
}

// NewHandler returns a query handler over rm; waiter tells when rm reached a
// consistency token, waiting at most maxWait.
func NewHandler(rm ReadModel, waiter Waiter, maxWait time.Duration) (*Handler, error) {
	if rm == nil || waiter == nil {
		return nil, errors.New("query: handler needs a read model and a waiter")
	}
	if maxWait <= 0 {
		return nil, fmt.Errorf("query: max wait must be positive, got %s", maxWait)
	}
	return &Handler{rm: rm, waiter: waiter, maxWait: maxWait}, nil
}

// Ticket returns one ticket once the read model reached token (0: no wait).
func (h *Handler) Ticket(ctx context.Context, s Scope, ref string, token uint64) (Ticket, error) {
	if err := h.wait(ctx, token); err != nil {
		return Ticket{}, err
	}
	return h.rm.Ticket(ctx, s, ref)
}

// List returns a page of tickets once the read model reached token.
func (h *Handler) List(ctx context.Context, s Scope, f Filter, token uint64) (Page, error) {
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		return Page{}, fmt.Errorf("query: limit %d outside 1..%d", f.Limit, MaxLimit)
	}
	if err := h.wait(ctx, token); err != nil {
		return Page{}, err
	}
	return h.rm.List(ctx, s, f)
}

// Events returns a ticket's history once the read model reached token.
func (h *Handler) Events(ctx context.Context, s Scope, ref string, token uint64) ([]Event, error) {
	if err := h.wait(ctx, token); err != nil {
		return nil, err
	}
	return h.rm.Events(ctx, s, ref)
}

// Counts returns tickets per status once the read model reached token.
func (h *Handler) Counts(ctx context.Context, s Scope, token uint64) (Counts, error) {
	if err := h.wait(ctx, token); err != nil {
		return nil, err
	}
	return h.rm.Counts(ctx, s)
}

// Comments returns a ticket's comments once the read model reached token.
func (h *Handler) Comments(ctx context.Context, s Scope, ref string, token uint64) ([]Comment, error) {
	if err := h.wait(ctx, token); err != nil {
		return nil, err
	}
	return h.rm.Comments(ctx, s, ref)
}

// Attachments returns a ticket's attachments once the read model reached token.
func (h *Handler) Attachments(ctx context.Context, s Scope, ref string, token uint64) ([]Attachment, error) {
	if err := h.wait(ctx, token); err != nil {
		return nil, err
	}
	return h.rm.Attachments(ctx, s, ref)
}

// Attachment returns one attachment's metadata once the read model reached token.
func (h *Handler) Attachment(ctx context.Context, s Scope, ref, id string, token uint64) (Attachment, error) {
	if err := h.wait(ctx, token); err != nil {
		return Attachment{}, err
	}
	return h.rm.Attachment(ctx, s, ref, id)
}

func (h *Handler) wait(ctx context.Context, token uint64) error {
	if token == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, h.maxWait)
	defer cancel()
	err := h.waiter.WaitFor(wctx, token)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err() // the caller went away; not the read model's fault
	case wctx.Err() != nil:
		return fmt.Errorf("%w: token %d after %s", ErrNotCaughtUp, token, h.maxWait)
	default:
		return fmt.Errorf("wait for token %d: %w", token, err)
	}
}
