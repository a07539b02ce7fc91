// Package ticketv1 holds version 1 of the ticket context's event contracts:
// the payloads that intake appends to the TICKETS stream.
package ticketv1

import (
	"embed"
	"encoding/json"
	"time"

	"github.com/opsdesk/opsdesk/api/events"
)

// Stream and subject layout of the ticket context.
const (
	// Context is the first subject token: ticket.<tenant>.<ticket-id>.
	Context = "ticket"
	// Stream is the JetStream stream holding every ticket event.
	Stream = "TICKETS"
	// Source is the CloudEvents source of events intake appends.
	Source = "/services/intake"
)

// TypeTicketCreated is the ce-type of TicketCreated.
const TypeTicketCreated = "opsdesk.ticket.created.v1"

// Ticket types.
const (
	TypeIncident       = "incident"
	TypeServiceRequest = "service_request"
	TypeProblem        = "problem"
	TypeChange         = "change"
)

// Levels used for impact and urgency.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Priorities, derived from impact and urgency with the ITIL matrix when a
// ticket is created: P1 critical, P2 high, P3 medium, P4 low, P5 planning.
const (
	PriorityP1 = "P1"
	PriorityP2 = "P2"
	PriorityP3 = "P3"
	PriorityP4 = "P4"
	PriorityP5 = "P5"
)

// Channels a ticket can arrive through.
const (
	ChannelAPI = "api"
)

// TicketCreated records that a ticket was logged. Its JSON Schema is
// ticket.created.v1.schema.json beside this file.
//
// Priority is recorded rather than re-derived by readers, so a later change
// of the priority matrix does not rewrite history.
type TicketCreated struct {
	TicketID    string `json:"ticket_id"`
	Number      string `json:"number"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Impact      string `json:"impact"`
	Urgency     string `json:"urgency"`
	Priority    string `json:"priority"`
	Requester   string `json:"requester"`
	// RequesterID is the requester's user id when the requester is a user
	// (a ticket logged by a requester for themselves, or by an agent for a
	// known user); empty for someone OpsDesk does not know yet.
	RequesterID string    `json:"requester_id,omitempty"`
	Channel     string    `json:"channel"`
	CreatedAt   time.Time `json:"created_at"`
	// Category is the tenant's classification, e.g. "hardware/printer".
	Category string `json:"category,omitempty"`
	// Tags are free labels, lower-case, sorted, unique.
	Tags []string `json:"tags,omitempty"`
	// ConfigItems are the ids of affected configuration items (CMDB).
	ConfigItems []string `json:"config_items,omitempty"`
	// Watchers are user ids told about every public change.
	Watchers []string `json:"watchers,omitempty"`
	// CustomFields is the object of the tenant's custom fields, valid
	// against the tenant's schema when the ticket was logged.
	CustomFields json.RawMessage `json:"custom_fields,omitempty"`
	// FollowUpOf is the ticket this one follows up (a reopen after the
	// reopen window).
	FollowUpOf string `json:"follow_up_of,omitempty"`
	// MessageID is the Message-ID of the mail that opened the ticket.
	MessageID string `json:"message_id,omitempty"`
}

// Schemas holds the JSON Schema (draft 2020-12) of every event type of this
// package, one file per type, named as events.EventType.Schema says.
//
//go:embed *.schema.json
var Schemas embed.FS

// EventType describes one event type of this package. It is the shared
// events.EventType; the alias keeps ticketv1.EventType working.
type EventType = events.EventType

// Ids and times the examples share: one ticket's story.
const (
	exampleTicket      = "tk_01JB8ZQ5M6V8Y0K3W4X2N7R9TE"
	exampleOther       = "tk_01K94FV0P80SKHS01HFYHV2YCX"
	exampleOtherNumber = "OPS-1038"
	examplePrevious    = "tk_01JAQP748R4TFF59TDWH9EDD1R"
	exampleRequesterID = "u_01JB8ZQ5M6V8Y0K3W4X2N7R9TF"
	exampleWatcher1    = "u_01K94G7TV87TRMCT2JAYYXCG7V"
	exampleWatcher2    = "u_01K94GMN08QJ4J7E61X4WJ8NPY"
	exampleAgent       = "u_01K94H1F58QPEATF1DDMD3T7X7"
	exampleNote        = "c_01K94HE9A82S0RQ7946KJ6BRAG"
	exampleReply       = "c_01K94HV3F810H6R0RHK6BJN139"
	exampleAttachment  = "at_01K94J7XM86ZW1FZ39B83T1JKE"
	exampleBlob        = "bl_01K94K1HY86BKRZBE1MR3CP3XK"
	exampleCI1         = "ci_01K94KEC38PE5ACQPKH6VMT3XH"
	exampleCI2         = "ci_01K94KV68871Q6PSD6MJ5R2J7P"
	exampleFingerprint = "c3f2a81e9b0d4475"
)

var (
	exampleCreatedAt  = time.Date(2025, 11, 3, 9, 12, 45, 123456000, time.UTC)
	exampleRepliedAt  = time.Date(2025, 11, 3, 9, 41, 7, 402118000, time.UTC)
	exampleAlertStart = time.Date(2025, 11, 3, 8, 58, 30, 0, time.UTC)
	exampleAlertEnd   = time.Date(2025, 11, 4, 15, 27, 12, 918000000, time.UTC)
	exampleResolvedAt = time.Date(2025, 11, 4, 15, 30, 0, 654321000, time.UTC)
)

// EventTypes lists every event type of the ticket context, version 1.
func EventTypes() []EventType {
	return []EventType{
		{
			Type:   TypeTicketCreated,
			New:    func() any { return &TicketCreated{} },
			Schema: "ticket.created.v1.schema.json",
			Example: func() any {
				return &TicketCreated{
					TicketID:     exampleTicket,
					Number:       "OPS-1042",
					Type:         TypeIncident,
					Title:        "Printer on floor 3 is offline",
					Description:  "Nobody on floor 3 can print since 9:00.",
					Impact:       LevelMedium,
					Urgency:      LevelHigh,
					Priority:     PriorityP2,
					Requester:    "ada@example.com",
					RequesterID:  exampleRequesterID,
					Channel:      ChannelEmail,
					CreatedAt:    exampleCreatedAt,
					Category:     "hardware/printer",
					Tags:         []string{"floor-3", "printer"},
					ConfigItems:  []string{exampleCI1},
					Watchers:     []string{exampleWatcher1, exampleWatcher2},
					CustomFields: json.RawMessage(`{"asset_tag":"PRN-0031","cost_center":"4100"}`),
					FollowUpOf:   examplePrevious,
					MessageID:    "CAH7r1xQ9kL2m@mail.example.com",
				}
			},
		},
		{
			Type:   TypeTicketUpdated,
			New:    func() any { return &TicketUpdated{} },
			Schema: "ticket.updated.v1.schema.json",
			Example: func() any {
				return &TicketUpdated{
					Title:        new("Printers on floor 3 are offline"),
					Description:  new("Nobody on floor 3 can print since 9:00; both printers show error E-052."),
					Category:     new("hardware/printer"),
					Impact:       new(LevelHigh),
					Urgency:      new(LevelHigh),
					Priority:     new(PriorityP1),
					Tags:         new([]string{"floor-3", "outage", "printer"}),
					ConfigItems:  new([]string{exampleCI1, exampleCI2}),
					Watchers:     new([]string{exampleWatcher1}),
					CustomFields: json.RawMessage(`{"asset_tag":"PRN-0031","cost_center":"4100","vendor_case":"HP-88213"}`),
				}
			},
		},
		{
			Type:    TypeTicketOpened,
			New:     func() any { return &TicketOpened{} },
			Schema:  "ticket.opened.v1.schema.json",
			Example: func() any { return &TicketOpened{From: StatusNew} },
		},
		{
			Type:   TypeTicketWorkStarted,
			New:    func() any { return &TicketWorkStarted{} },
			Schema: "ticket.work_started.v1.schema.json",
			Example: func() any {
				return &TicketWorkStarted{From: StatusPending, Cause: CauseRequesterReplied}
			},
		},
		{
			Type:   TypeTicketPended,
			New:    func() any { return &TicketPended{} },
			Schema: "ticket.pended.v1.schema.json",
			Example: func() any {
				return &TicketPended{
					From:   StatusInProgress,
					Reason: PendAwaitingThirdParty,
					Note:   "Waiting for the vendor to ship a replacement fuser (case HP-88213).",
				}
			},
		},
		{
			Type:   TypeTicketResolved,
			New:    func() any { return &TicketResolved{} },
			Schema: "ticket.resolved.v1.schema.json",
			Example: func() any {
				return &TicketResolved{
					From:        StatusInProgress,
					Code:        ResolutionFixed,
					Note:        "Replaced the fuser unit on both printers; test pages print.",
					Cause:       CauseAlertsResolved,
					AutoCloseAt: exampleResolvedAt.AddDate(0, 0, 7),
					ReopenUntil: exampleResolvedAt.AddDate(0, 0, 14),
				}
			},
		},
		{
			Type:   TypeTicketClosed,
			New:    func() any { return &TicketClosed{} },
			Schema: "ticket.closed.v1.schema.json",
			Example: func() any {
				return &TicketClosed{From: StatusResolved, Reason: CloseAuto}
			},
		},
		{
			Type:   TypeTicketReopened,
			New:    func() any { return &TicketReopened{} },
			Schema: "ticket.reopened.v1.schema.json",
			Example: func() any {
				return &TicketReopened{
					From:   StatusResolved,
					Reason: "The printer jams again after a few pages.",
					Cause:  CauseRequesterReplied,
				}
			},
		},
		{
			Type:   TypeTicketCancelled,
			New:    func() any { return &TicketCancelled{} },
			Schema: "ticket.cancelled.v1.schema.json",
			Example: func() any {
				return &TicketCancelled{
					From:   StatusOpen,
					Reason: "Logged twice by mistake; the requester withdrew it.",
				}
			},
		},
		{
			Type:   TypeTicketCommented,
			New:    func() any { return &TicketCommented{} },
			Schema: "ticket.commented.v1.schema.json",
			Example: func() any {
				return &TicketCommented{
					CommentID:     exampleNote,
					Body:          "Both printers show E-052 (fuser). Photo of the panel attached; vendor case HP-88213 opened.",
					Internal:      true,
					AuthorID:      exampleAgent,
					Author:        "grace@example.com",
					AuthorRole:    AuthorAgent,
					Channel:       ChannelAPI,
					MessageID:     "c_01K94HE9A82S0RQ7946KJ6BRAG@opsdesk.example.com",
					AttachmentIDs: []string{exampleAttachment},
				}
			},
		},
		{
			Type:   TypeTicketFirstResponded,
			New:    func() any { return &TicketFirstResponded{} },
			Schema: "ticket.first_responded.v1.schema.json",
			Example: func() any {
				return &TicketFirstResponded{CommentID: exampleReply, AgentID: exampleAgent, At: exampleRepliedAt}
			},
		},
		{
			Type:   TypeTicketAttachmentAdded,
			New:    func() any { return &TicketAttachmentAdded{} },
			Schema: "ticket.attachment_added.v1.schema.json",
			Example: func() any {
				return &TicketAttachmentAdded{
					AttachmentID: exampleAttachment,
					BlobID:       exampleBlob,
					Filename:     "fuser-error.jpg",
					ContentType:  "image/jpeg",
					Size:         284113,
					SHA256:       "81e69d2741735f7c938281172cac6bf695e757432c177a9d2294df7496fe9179",
					Internal:     true,
					Inline:       true,
					CommentID:    exampleNote,
				}
			},
		},
		{
			Type:   TypeTicketLinked,
			New:    func() any { return &TicketLinked{} },
			Schema: "ticket.linked.v1.schema.json",
			Example: func() any {
				return &TicketLinked{Kind: LinkCausedBy, Target: exampleOther, TargetNumber: exampleOtherNumber}
			},
		},
		{
			Type:   TypeTicketUnlinked,
			New:    func() any { return &TicketUnlinked{} },
			Schema: "ticket.unlinked.v1.schema.json",
			Example: func() any {
				return &TicketUnlinked{Kind: LinkRelated, Target: exampleOther}
			},
		},
		{
			Type:   TypeTicketMerged,
			New:    func() any { return &TicketMerged{} },
			Schema: "ticket.merged.v1.schema.json",
			Example: func() any {
				return &TicketMerged{
					Into:        exampleOther,
					IntoNumber:  exampleOtherNumber,
					Requester:   "ada@example.com",
					RequesterID: exampleRequesterID,
				}
			},
		},
		{
			Type:   TypeTicketSatisfactionRated,
			New:    func() any { return &TicketSatisfactionRated{} },
			Schema: "ticket.satisfaction_rated.v1.schema.json",
			Example: func() any {
				return &TicketSatisfactionRated{
					Rating:     4,
					Comment:    "Fixed the second time round, thanks.",
					Resolution: 2,
					RaterID:    exampleRequesterID,
				}
			},
		},
		{
			Type:   TypeTicketAlertReceived,
			New:    func() any { return &TicketAlertReceived{} },
			Schema: "ticket.alert_received.v1.schema.json",
			Example: func() any {
				return &TicketAlertReceived{
					Fingerprint: exampleFingerprint,
					GroupKey:    `{}:{alertname="PrinterOffline"}`,
					Title:       "Printer prn-3-east is offline",
					Severity:    "critical",
					Source:      "alertmanager",
					Labels: map[string]string{
						"alertname": "PrinterOffline",
						"instance":  "prn-3-east.example.com",
						"severity":  "critical",
					},
					StartsAt: exampleAlertStart,
					URL:      "https://alertmanager.example.com/#/alerts?filter=%7Balertname%3D%22PrinterOffline%22%7D",
				}
			},
		},
		{
			Type:   TypeTicketAlertResolved,
			New:    func() any { return &TicketAlertResolved{} },
			Schema: "ticket.alert_resolved.v1.schema.json",
			Example: func() any {
				return &TicketAlertResolved{Fingerprint: exampleFingerprint, EndsAt: exampleAlertEnd}
			},
		},
		{
			Type:   TypeTicketRequesterIdentified,
			New:    func() any { return &TicketRequesterIdentified{} },
			Schema: "ticket.requester_identified.v1.schema.json",
			Example: func() any {
				return &TicketRequesterIdentified{RequesterID: exampleRequesterID}
			},
		},
	}
}
