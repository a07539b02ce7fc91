package channels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gabriel-vasile/mimetype"
	"github.com/oklog/ulid/v2"

	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
	ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"
	"github.com/opsdesk/opsdesk/services/intake/internal/adapters/pgstore"
	"github.com/opsdesk/opsdesk/services/intake/internal/app/command"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
	"github.com/opsdesk/opsdesk/services/intake/internal/mail"
)

// DefaultAddress is the tenant's default help-desk address.
func (s *Service) DefaultAddress(_ context.Context, tenant string) string {
	slug, ok := s.dir.TenantSlug(tenant)
	if !ok {
		slug = tenant
	}
	return slug + "@" + s.cfg.MailDomain
}

// TenantForAddress returns the tenant whose help-desk address addr is:
// <slug>@MailDomain, or <slug>+anything@MailDomain (sub-addressing), or
// one of the inbound addresses a tenant claimed in its settings.
func (s *Service) TenantForAddress(ctx context.Context, addr string) (string, bool, error) {
	addr = strings.ToLower(strings.Trim(addr, "<> "))
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return "", false, nil
	}
	if domain == strings.ToLower(s.cfg.MailDomain) {
		local, _, _ = strings.Cut(local, "+")
		id, ok := s.dir.TenantBySlug(local)
		return id, ok, nil
	}
	return s.settings.AddressOwner(ctx, addr)
}

// ReceiveEmail processes one raw message for tenant. Errors: a
// *mail.TooLargeError (refuse: 552 or 413), a *RejectedError (the tenant's
// policy refuses the sender), or anything else (retry later). Malformed
// mail is not an error: it is quarantined, and the outcome says so.
func (s *Service) ReceiveEmail(ctx context.Context, tenant string, raw []byte, m command.Meta) (Outcome, error) {
	var stored *command.Blob
	out, err := s.processEmail(ctx, tenant, raw, &stored, m)
	// Mail that cannot be understood, or that makes no valid ticket (a
	// sender address too long, say), is kept for an admin: answering an
	// error would only make the sending server retry it forever.
	var (
		pe *mail.ParseError
		ve *ticket.ValidationError
	)
	if !errors.As(err, &pe) && !errors.As(err, &ve) {
		return out, err
	}
	if stored == nil {
		b, perr := s.state.PutBlob(ctx, tenant, "message/rfc822", raw, s.now())
		if perr != nil {
			return Outcome{}, perr
		}
		stored = &b
	}
	qid, qerr := s.state.Quarantine(ctx, tenant, "email", err.Error(), "", stored.ID, s.now())
	if qerr != nil {
		return Outcome{}, qerr
	}
	s.log.WarnContext(ctx, "mail quarantined", "tenant", tenant, "quarantine_id", qid, "reason", err.Error())
	return Outcome{Outcome: OutcomeQuarantined, Reason: err.Error(), QuarantineID: qid}, nil
}

// processEmail parses, filters, threads and applies one message. The raw
// message is stored (as the original kept with the ticket) only once the
// mail is going to reach a ticket; *original holds it afterwards, and a
// caller that already has it stored (re-processing) passes it in.
// mail.Parse refuses an oversized message (*mail.TooLargeError).
func (s *Service) processEmail(ctx context.Context, tenant string, raw []byte, original **command.Blob, m command.Meta) (Outcome, error) {
	msg, err := mail.Parse(raw, s.cfg.Mail)
	if err != nil {
		return Outcome{}, err
	}
	if loop, why := msg.IsLoop(s.cfg.MailDomain); loop {
		s.log.InfoContext(ctx, "mail dropped", "tenant", tenant, "reason", why)
		return Outcome{Outcome: OutcomeDropped, Reason: why}, nil
	}
	from := msg.From.Email
	s.catchUp(ctx)
	if msg.MessageID != "" {
		// A redelivery (SMTP retry, or the same mail to two of our
		// addresses) is already on a ticket.
		if id, err := s.threads.TicketByMessageID(ctx, tenant, []string{msg.MessageID}); err != nil {
			return Outcome{}, err
		} else if id != "" {
			return Outcome{Outcome: OutcomeDropped, TicketID: id, Reason: "duplicate: this message is already on the ticket"}, nil
		}
	}
	st, err := s.settings.Get(ctx, tenant)
	if err != nil {
		return Outcome{}, err
	}
	userID, roles, known := s.dir.UserByEmail(tenant, from)
	if !known && st.UnknownSenders == intakev1.UnknownSendersReject {
		return Outcome{}, &RejectedError{Reason: "this help desk accepts mail only from its users; " + from + " is not one"}
	}
	if *original == nil {
		b, err := s.state.PutBlob(ctx, tenant, "message/rfc822", raw, s.now())
		if err != nil {
			return Outcome{}, err
		}
		*original = &b
	}
	files, err := s.storeParts(ctx, tenant, msg, **original)
	if err != nil {
		return Outcome{}, err
	}
	m.Actor = "mail:" + from
	if id, err := s.thread(ctx, tenant, msg); err != nil {
		return Outcome{}, err
	} else if id != "" {
		role := ticketv1.AuthorRequester
		if slices.ContainsFunc(roles, func(r string) bool { return r != "requester" }) {
			role = ticketv1.AuthorAgent // the domain makes them requester on their own ticket
		}
		res, err := s.tickets.Comment(ctx, command.Ref{Tenant: tenant, ID: id}, nil, m, ticket.Comment{
			Body: commentBody(msg), AuthorID: userID, Author: author(msg.From), AuthorRole: role,
			Channel: ticketv1.ChannelEmail, MessageID: msg.MessageID,
		}, files...)
		var ce *ticket.ConflictError
		switch {
		case errors.As(err, &ce) || errors.Is(err, ticket.ErrNotFound):
			// A cancelled ticket takes no reply: the mail opens a new one.
		case err != nil:
			return Outcome{}, err
		case res.FollowUp != nil:
			return Outcome{Outcome: OutcomeFollowUp, TicketID: res.FollowUp.ID, TicketNumber: res.FollowUp.Number, Sequence: res.Sequence}, nil
		case !res.Appended:
			return Outcome{Outcome: OutcomeDropped, TicketID: res.Ticket.ID, Reason: "duplicate: this message is already on the ticket"}, nil
		default:
			return Outcome{Outcome: OutcomeCommented, TicketID: res.Ticket.ID, TicketNumber: res.Ticket.Number, Sequence: res.Sequence}, nil
		}
	}
	res, err := s.create.Handle(ctx, command.CreateTicket{
		Tenant: tenant, Type: ticketv1.TypeIncident, Title: title(msg.Subject), Description: ticket.Clip(commentBody(msg), ticket.MaxDescription),
		Impact: ticketv1.LevelLow, Urgency: ticketv1.LevelMedium, Requester: from, RequesterID: userID,
		Channel: ticketv1.ChannelEmail, MessageID: msg.MessageID, Actor: m.Actor, CorrelationID: m.CorrelationID,
		Then: func(t ticket.Ticket, _ time.Time) ([]any, error) { return ticket.DecideAttach(t, files...) },
		// Two deliveries of one mail at once (an MTA's retry racing the
		// first) make one ticket.
		IdempotencyKey: idempotencyKey(msg.MessageID),
	})
	if err != nil {
		return Outcome{}, err
	}
	if res.Replayed {
		return Outcome{Outcome: OutcomeDropped, TicketID: res.Ticket.ID, TicketNumber: res.Ticket.Number,
			Reason: "duplicate: this message opened the ticket already"}, nil
	}
	return Outcome{Outcome: OutcomeCreated, TicketID: res.Ticket.ID, TicketNumber: res.Ticket.Number, Sequence: res.Sequence}, nil
}

// idempotencyKey is the create's key for a mail with Message-ID id ("" for
// none: a mail without one is not recognised again). The space keeps it out
// of the keys clients may send (printable ASCII without space).
func idempotencyKey(id string) string {
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return "mail " + hex.EncodeToString(sum[:16])
}

// catchUp waits, bounded, for the read model to hold every ticket event
// appended so far; past the bound the mail is threaded with what is there.
func (s *Service) catchUp(ctx context.Context) {
	if s.cfg.CaughtUp == nil {
		return
	}
	wait := s.cfg.CatchUpWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.cfg.CaughtUp(wctx); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "mail threaded before the read model caught up", "err", err)
	}
}

// thread finds the ticket a message replies to: by In-Reply-To and
// References (our own Message-IDs name the ticket; others are looked up
// among every message in and out), then by the [OPS-n] token of the
// subject. Any sender's reply threads, so replies from people in Cc or from
// the requester's other address land on the same ticket.
func (s *Service) thread(ctx context.Context, tenant string, msg *mail.Message) (string, error) {
	ids := msg.ThreadIDs()
	for _, id := range ids {
		at := strings.LastIndexByte(id, '@')
		if at < 0 || !strings.EqualFold(id[at+1:], s.cfg.MailDomain) {
			continue
		}
		tk, _, _ := strings.Cut(id[:at], ".") // <ticket>.<comment>@domain
		if strings.HasPrefix(tk, ticket.IDPrefix) && s.exists(ctx, tenant, tk) {
			return tk, nil
		}
	}
	if id, err := s.threads.TicketByMessageID(ctx, tenant, ids); err != nil || id != "" {
		return id, err
	}
	if n := mail.TicketToken(msg.Subject, ticket.NumberPrefix); n != "" {
		id, err := s.threads.TicketID(ctx, tenant, n)
		if err == nil {
			return id, nil
		}
	}
	return "", nil
}

// exists reports whether tenant has the ticket id.
func (s *Service) exists(ctx context.Context, tenant, id string) bool {
	_, err := s.tickets.Visible(ctx, command.Ref{Tenant: tenant, ID: id})
	return err == nil
}

// storeParts stores a message's attachments and inline parts, and the
// original message as an internal attachment (the text of a reply is
// stripped of quotes and signature; the original keeps them).
func (s *Service) storeParts(ctx context.Context, tenant string, msg *mail.Message, original command.Blob) ([]ticket.Attachment, error) {
	out := make([]ticket.Attachment, 0, len(msg.Attachments)+1)
	for _, a := range msg.Attachments {
		typ := mimetype.Detect(a.Data).String()
		b, err := s.state.PutBlob(ctx, tenant, typ, a.Data, s.now())
		if err != nil {
			return nil, err
		}
		out = append(out, ticket.Attachment{ID: "at_" + ulid.Make().String(), BlobID: b.ID, Filename: a.Filename,
			ContentType: typ, SHA256: b.SHA256, Size: b.Size, Inline: a.Inline})
	}
	out = append(out, ticket.Attachment{ID: "at_" + ulid.Make().String(), BlobID: original.ID, Filename: "original-message.eml",
		ContentType: "message/rfc822", SHA256: original.SHA256, Size: original.Size, Internal: true})
	return out, nil
}

// commentBody is the text a message adds: the reply without quotes and
// signature, else the whole text, never empty.
func commentBody(msg *mail.Message) string {
	body := strings.ToValidUTF8(strings.ReplaceAll(cmpOr(msg.Reply, msg.Text), "\x00", ""), "\uFFFD")
	if strings.TrimSpace(body) == "" {
		body = "(The message has no text.)"
	}
	return ticket.Clip(body, ticket.MaxCommentBody)
}

func cmpOr(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}

func author(a mail.Address) string {
	if a.Name != "" {
		return a.Name + " <" + a.Email + ">"
	}
	return a.Email
}

// title makes a ticket title of a subject: one line, at most MaxTitle.
func title(subject string) string {
	t := strings.Join(strings.FieldsFunc(subject, func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
	if strings.TrimSpace(t) == "" {
		t = "(no subject)"
	}
	return ticket.Clip(t, ticket.MaxTitle)
}

// reprocessEmail processes a quarantined message again.
func (s *Service) reprocessEmail(ctx context.Context, tenant string, q pgstore.QuarantineItem, m command.Meta) (Outcome, error) {
	b, err := s.state.Blob(ctx, tenant, q.BlobID)
	if err != nil {
		return Outcome{}, err
	}
	stored := &b
	return s.processEmail(ctx, tenant, b.Data, &stored, m)
}
