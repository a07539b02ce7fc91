package ticketv1

import (
	"encoding/json"
	"time"
)

// ce-types of the ticket lifecycle, collaboration and channels.
const (
	TypeTicketUpdated             = "opsdesk.ticket.updated.v1"
	TypeTicketOpened              = "opsdesk.ticket.opened.v1"
	TypeTicketWorkStarted         = "opsdesk.ticket.work_started.v1"
	TypeTicketPended              = "opsdesk.ticket.pended.v1"
	TypeTicketResolved            = "opsdesk.ticket.resolved.v1"
	TypeTicketClosed              = "opsdesk.ticket.closed.v1"
	TypeTicketReopened            = "opsdesk.ticket.reopened.v1"
	TypeTicketCancelled           = "opsdesk.ticket.cancelled.v1"
	TypeTicketCommented           = "opsdesk.ticket.commented.v1"
	TypeTicketFirstResponded      = "opsdesk.ticket.first_responded.v1"
	TypeTicketAttachmentAdded     = "opsdesk.ticket.attachment_added.v1"
	TypeTicketLinked              = "opsdesk.ticket.linked.v1"
	TypeTicketUnlinked            = "opsdesk.ticket.unlinked.v1"
	TypeTicketMerged              = "opsdesk.ticket.merged.v1"
	TypeTicketSatisfactionRated   = "opsdesk.ticket.satisfaction_rated.v1"
	TypeTicketAlertReceived       = "opsdesk.ticket.alert_received.v1"
	TypeTicketAlertResolved       = "opsdesk.ticket.alert_resolved.v1"
	TypeTicketRequesterIdentified = "opsdesk.ticket.requester_identified.v1"
)

// Statuses of the lifecycle.
const (
	StatusNew        = "new"
	StatusOpen       = "open"
	StatusInProgress = "in_progress"
	StatusPending    = "pending"
	StatusResolved   = "resolved"
	StatusClosed     = "closed"
	StatusCancelled  = "cancelled"
)

// Reasons a ticket waits (TicketPended.Reason).
const (
	PendAwaitingRequester  = "awaiting_requester"
	PendAwaitingThirdParty = "awaiting_third_party"
	PendAwaitingChange     = "awaiting_change"
)

// Resolution codes (TicketResolved.Code).
const (
	ResolutionFixed           = "fixed"
	ResolutionWorkaround      = "workaround"
	ResolutionNoFaultFound    = "no_fault_found"
	ResolutionNotReproducible = "not_reproducible"
	ResolutionDuplicate       = "duplicate"
	ResolutionUserEducation   = "user_education"
	ResolutionOutOfScope      = "out_of_scope"
)

// Why a ticket closed (TicketClosed.Reason).
const (
	CloseManual = "manual" // someone closed it
	CloseAuto   = "auto"   // the auto-close timer after resolution
	CloseMerged = "merged" // merged into another ticket as its duplicate
)

// What caused a transition that no one asked for directly (Cause fields).
const (
	CauseRequesterReplied = "requester_replied"
	CauseAlertsResolved   = "alerts_resolved"
)

// Link kinds, read from the ticket that holds the link: "child" means the
// target is this ticket's child. Each link is recorded on both tickets,
// with the inverse kind on the target.
const (
	LinkParent       = "parent"
	LinkChild        = "child"
	LinkDuplicateOf  = "duplicate_of"
	LinkDuplicatedBy = "duplicated_by"
	LinkCausedBy     = "caused_by"
	LinkCauses       = "causes"
	LinkRelated      = "related"
	LinkFollowUpOf   = "follow_up_of"
	LinkFollowedUpBy = "followed_up_by"
)

// Channels beyond the API.
const (
	ChannelEmail = "email"
	ChannelAlert = "alert"
)

// Statuses of a monitoring alert.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Who wrote a comment (TicketCommented.AuthorRole).
const (
	AuthorAgent     = "agent"
	AuthorRequester = "requester"
	AuthorSystem    = "system"
)

// TicketUpdated records edits of a ticket's fields. Only the fields that
// changed are present; lists (tags, configuration items, watchers) and
// custom fields are the whole new value. Priority is present whenever
// impact or urgency changed: it is re-derived then.
type TicketUpdated struct {
	Title        *string         `json:"title,omitempty"`
	Description  *string         `json:"description,omitempty"`
	Category     *string         `json:"category,omitempty"`
	Impact       *string         `json:"impact,omitempty"`
	Urgency      *string         `json:"urgency,omitempty"`
	Priority     *string         `json:"priority,omitempty"`
	Tags         *[]string       `json:"tags,omitempty"`
	ConfigItems  *[]string       `json:"config_items,omitempty"`
	Watchers     *[]string       `json:"watchers,omitempty"`
	CustomFields json.RawMessage `json:"custom_fields,omitempty"`
}

// TicketOpened: a new ticket was accepted for work (new -> open).
type TicketOpened struct {
	From string `json:"from"`
}

// TicketWorkStarted: someone works on the ticket (-> in_progress). Cause is
// set when no one asked, e.g. the requester answered a pending ticket.
type TicketWorkStarted struct {
	From  string `json:"from"`
	Cause string `json:"cause,omitempty"`
}

// TicketPended: the ticket waits for someone outside the service desk; SLA
// clocks pause while it does.
type TicketPended struct {
	From   string `json:"from"`
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
}

// TicketResolved: the service is restored or the request fulfilled.
// AutoCloseAt and ReopenUntil are fixed from the tenant's settings when it
// happens, so a later change of settings does not move old deadlines.
type TicketResolved struct {
	From        string    `json:"from"`
	Code        string    `json:"code"`
	Note        string    `json:"note"`
	Cause       string    `json:"cause,omitempty"`
	AutoCloseAt time.Time `json:"auto_close_at"`
	ReopenUntil time.Time `json:"reopen_until"`
}

// TicketClosed: the ticket is done for good.
type TicketClosed struct {
	From   string `json:"from"`
	Reason string `json:"reason"`
}

// TicketReopened: a resolved ticket goes back to work (-> open).
type TicketReopened struct {
	From   string `json:"from"`
	Reason string `json:"reason,omitempty"`
	Cause  string `json:"cause,omitempty"`
}

// TicketCancelled: the ticket was withdrawn before it was resolved.
type TicketCancelled struct {
	From   string `json:"from"`
	Reason string `json:"reason,omitempty"`
}

// TicketCommented records a public reply or an internal note. MessageID is
// the RFC 5322 Message-ID of the mail that carried it in (channel email) or
// the one outbound mail about it will use, so replies thread back.
type TicketCommented struct {
	CommentID     string   `json:"comment_id"`
	Body          string   `json:"body"`
	Internal      bool     `json:"internal"`
	AuthorID      string   `json:"author_id,omitempty"`
	Author        string   `json:"author"`
	AuthorRole    string   `json:"author_role"`
	Channel       string   `json:"channel"`
	MessageID     string   `json:"message_id,omitempty"`
	AttachmentIDs []string `json:"attachment_ids,omitempty"`
}

// TicketFirstResponded: the first public reply of an agent, the moment SLA
// and reporting measure first-response time to.
type TicketFirstResponded struct {
	CommentID string    `json:"comment_id"`
	AgentID   string    `json:"agent_id,omitempty"`
	At        time.Time `json:"at"`
}

// TicketAttachmentAdded: a file was attached. The bytes are in the blob
// store under BlobID; ContentType is sniffed from them, not declared.
type TicketAttachmentAdded struct {
	AttachmentID string `json:"attachment_id"`
	BlobID       string `json:"blob_id"`
	Filename     string `json:"filename"`
	ContentType  string `json:"content_type"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	Internal     bool   `json:"internal"`
	Inline       bool   `json:"inline,omitempty"`
	CommentID    string `json:"comment_id,omitempty"`
}

// TicketLinked: a link to another ticket of the tenant was recorded.
type TicketLinked struct {
	Kind         string `json:"kind"`
	Target       string `json:"target"`
	TargetNumber string `json:"target_number"`
}

// TicketUnlinked: a link was removed.
type TicketUnlinked struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
}

// TicketMerged: the ticket was a duplicate and was merged into Into (and
// closed). Requester is repeated so notifications can tell them where their
// ticket went without another lookup.
type TicketMerged struct {
	Into        string `json:"into"`
	IntoNumber  string `json:"into_number"`
	Requester   string `json:"requester"`
	RequesterID string `json:"requester_id,omitempty"`
}

// TicketSatisfactionRated: the requester rated the resolution (CSAT).
// Resolution counts the ticket's resolutions, 1 for the first: one rating
// per resolution.
type TicketSatisfactionRated struct {
	Rating     int    `json:"rating"`
	Comment    string `json:"comment,omitempty"`
	Resolution int    `json:"resolution"`
	RaterID    string `json:"rater_id,omitempty"`
}

// TicketAlertReceived: a firing monitoring alert was attached to the
// incident (opening it, or adding to it).
type TicketAlertReceived struct {
	Fingerprint string            `json:"fingerprint"`
	GroupKey    string            `json:"group_key,omitempty"`
	Title       string            `json:"title"`
	Severity    string            `json:"severity"`
	Source      string            `json:"source"`
	Labels      map[string]string `json:"labels,omitempty"`
	StartsAt    time.Time         `json:"starts_at"`
	URL         string            `json:"url,omitempty"`
}

// TicketAlertResolved: monitoring reported an alert of the incident resolved.
type TicketAlertResolved struct {
	Fingerprint string    `json:"fingerprint"`
	EndsAt      time.Time `json:"ends_at"`
}

// TicketRequesterIdentified: the requester, known only by address when the
// ticket was logged, is now a known user.
type TicketRequesterIdentified struct {
	RequesterID string `json:"requester_id"`
}
