package ticket

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
)

// Limits of collaboration.
const (
	MaxCommentBody    = 65536
	MaxAttachments    = 100 // per ticket
	MaxSatisfaction   = 2000
	MaxFilename       = 255
	MaxLinksPerTicket = 200
)

// Comment is a public reply or an internal note. ID is allocated by the
// caller (c_<ULID>); MessageID is the mail's Message-ID when it came by
// mail, or the one outbound mail about it will carry.
type Comment struct {
	ID            string
	Body          string
	Internal      bool
	AuthorID      string
	Author        string
	AuthorRole    string // ticketv1.AuthorAgent, AuthorRequester or AuthorSystem
	Channel       string
	MessageID     string
	AttachmentIDs []string
	Policy        Policy
	At            time.Time
}

// DecideComment records a comment. Beyond TicketCommented it may decide:
//   - TicketFirstResponded, for the first public reply of an agent;
//   - TicketWorkStarted, when the requester answers a ticket pending on them;
//   - TicketReopened, when the requester replies to a resolved ticket within
//     the reopen window.
//
// A requester's reply to a closed ticket, or to a resolved one past the
// window, is ErrFollowUpRequired: it belongs on a follow-up ticket. A mail
// whose Message-ID already reached the ticket decides nothing.
func DecideComment(t Ticket, c Comment) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	var errs fields
	if strings.TrimSpace(c.Body) == "" {
		errs.add("body", "must not be blank")
	}
	errs.maxLen("body", c.Body, MaxCommentBody)
	if !slices.Contains([]string{ticketv1.AuthorAgent, ticketv1.AuthorRequester, ticketv1.AuthorSystem}, c.AuthorRole) {
		errs.add("author_role", "must be agent, requester or system")
	}
	if c.Internal && c.AuthorRole == ticketv1.AuthorRequester {
		errs.add("internal", "requesters cannot write internal notes")
	}
	if !strings.HasPrefix(c.ID, "c_") {
		errs.add("comment_id", "must be c_<ULID>")
	}
	if c.Author == "" {
		errs.add("author", "must be set")
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if t.HasMessage(c.MessageID) {
		return nil, nil // the same mail again (an MTA's retry): already here
	}
	requesterReply := c.AuthorRole == ticketv1.AuthorRequester && !c.Internal
	switch {
	case t.Status == StatusCancelled && !c.Internal:
		return nil, &ConflictError{Reason: "the ticket is cancelled; only internal notes can be added"}
	case requesterReply && (t.Status == StatusClosed || (t.Status == StatusResolved && c.At.After(t.ReopenUntil))):
		return nil, ErrFollowUpRequired
	case t.Status == StatusClosed && !c.Internal:
		return nil, &ConflictError{Reason: "the ticket is closed; only internal notes can be added"}
	}
	out := []any{ticketv1.TicketCommented{
		CommentID: c.ID, Body: c.Body, Internal: c.Internal, AuthorID: c.AuthorID, Author: c.Author,
		AuthorRole: c.AuthorRole, Channel: c.Channel, MessageID: c.MessageID, AttachmentIDs: c.AttachmentIDs,
	}}
	switch {
	case c.AuthorRole == ticketv1.AuthorAgent && !c.Internal && !t.FirstResponded:
		out = append(out, ticketv1.TicketFirstResponded{CommentID: c.ID, AgentID: c.AuthorID, At: c.At.UTC().Truncate(time.Microsecond)})
	case requesterReply && t.Status == StatusPending && t.PendingReason == ticketv1.PendAwaitingRequester:
		out = append(out, ticketv1.TicketWorkStarted{From: t.Status, Cause: ticketv1.CauseRequesterReplied})
	case requesterReply && t.Status == StatusResolved:
		out = append(out, ticketv1.TicketReopened{From: t.Status, Cause: ticketv1.CauseRequesterReplied})
	}
	return out, nil
}

// Attachment is a file being attached; its bytes are already in the blob
// store under BlobID.
type Attachment struct {
	ID, BlobID, Filename, ContentType, SHA256 string
	Size                                      int64
	Internal, Inline                          bool
	CommentID                                 string
}

// DecideAttach records an attachment, up to MaxAttachments per ticket.
func DecideAttach(t Ticket, as ...Attachment) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	if t.Terminal() {
		return nil, &ConflictError{Reason: "the ticket is " + t.Status + "; files can no longer be attached"}
	}
	if t.Attachments+len(as) > MaxAttachments {
		return nil, &ConflictError{Reason: fmt.Sprintf("a ticket holds at most %d attachments; it has %d", MaxAttachments, t.Attachments)}
	}
	var errs fields
	out := make([]any, 0, len(as))
	for i, a := range as {
		f := fmt.Sprintf("files[%d]", i)
		if a.Filename == "" || utf8.RuneCountInString(a.Filename) > MaxFilename || strings.ContainsAny(a.Filename, "/\\\x00") {
			errs.add(f+".filename", fmt.Sprintf("must be 1 to %d characters without path separators", MaxFilename))
		}
		if a.Size < 0 || len(a.SHA256) != 64 || a.ContentType == "" || !strings.HasPrefix(a.ID, "at_") || a.BlobID == "" {
			errs.add(f, "is not a stored file")
		}
		out = append(out, ticketv1.TicketAttachmentAdded{
			AttachmentID: a.ID, BlobID: a.BlobID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size,
			SHA256: a.SHA256, Internal: a.Internal, Inline: a.Inline, CommentID: a.CommentID,
		})
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Rate is the requester's satisfaction rating of the last resolution.
type Rate struct {
	Rating  int
	Comment string
	RaterID string
}

// DecideRate records a CSAT rating: after a resolution, once per
// resolution. Only the requester rates; the port checks who is calling.
func DecideRate(t Ticket, r Rate) ([]any, error) {
	if !t.Exists() {
		return nil, ErrNotFound
	}
	var errs fields
	if r.Rating < 1 || r.Rating > 5 {
		errs.add("rating", "must be 1 to 5")
	}
	errs.maxLen("comment", r.Comment, MaxSatisfaction)
	if err := errs.err(); err != nil {
		return nil, err
	}
	switch {
	case t.Status != StatusResolved && t.Status != StatusClosed, t.Resolutions == 0:
		return nil, &ConflictError{Reason: "only a resolved ticket can be rated; this one is " + t.Status}
	case t.RatedResolution >= t.Resolutions:
		return nil, &ConflictError{Reason: "this resolution has already been rated"}
	}
	return []any{ticketv1.TicketSatisfactionRated{Rating: r.Rating, Comment: r.Comment, Resolution: t.Resolutions, RaterID: r.RaterID}}, nil
}

// DecideIdentify records that the requester, known by address only, is
// the user userID with that address; a ticket whose requester is already a
// user, or another address, is left alone.
func DecideIdentify(t Ticket, userID, email string) []any {
	if !t.Exists() || t.RequesterID != "" || !strings.EqualFold(strings.TrimSpace(t.Requester), strings.TrimSpace(email)) {
		return nil
	}
	return []any{ticketv1.TicketRequesterIdentified{RequesterID: userID}}
}
