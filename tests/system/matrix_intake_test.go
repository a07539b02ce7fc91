package system_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/testwait"
)

// Bodies of the intake routes that take no JSON.
const (
	ctypeRFC822 = "message/rfc822"
	// attachmentText is the file every upload of the tests sends.
	attachmentText = "Traceroute from Berlin: hop 7 times out.\n"
	// matrixComment is the reply on client1's ticket the matrix lists.
	matrixComment = "Rebooted the router, still down."
)

// multipartFiles is a multipart/form-data body with one "file" part per
// name (each holding attachmentText), and its Content-Type.
func multipartFiles(t testing.TB, names ...string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, name := range names {
		part, err := w.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.Write([]byte(attachmentText)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// rfc822 is a small valid message from from to to.
func rfc822(from, to, subject, messageID string) []byte {
	return []byte("From: " + from + "\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + messageID + ">\r\n" +
		"Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello,\r\n\r\nthe printer on the second floor jams on every page.\r\n")
}

// malformedAlert is an alert payload the parser refuses (a title that is
// not a string): intake answers 400 and keeps it in the quarantine.
var malformedAlert = []byte(`{"title": 42, "severity": "critical"}`)

var quarantineID = regexp.MustCompile(`\bq_[0-9A-Za-z]+`)

// quarantineAlert posts malformedAlert and returns the quarantine id the
// 400's detail names.
func (s *stack) quarantineAlert(token string, headers ...header) string {
	s.t.Helper()
	a := expect(s.t, s.do(http.MethodPost, "/v1/inbound/alerts", token, malformedAlert, headers...),
		http.StatusBadRequest, "post a malformed alert payload")
	p := decode[struct{ Detail string }](s.t, a)
	qid := quarantineID.FindString(p.Detail)
	if qid == "" {
		s.t.Fatalf("the 400 of a malformed alert payload names no quarantine id: %s", a.body)
	}
	return qid
}

// upload attaches one file to the ticket and returns the attachment's id.
func (s *stack) upload(token, ticketID, name string, headers ...header) string {
	s.t.Helper()
	body, ctype := multipartFiles(s.t, name)
	a := expect(s.t, s.do(http.MethodPost, "/v1/tickets/"+ticketID+"/attachments", token, body,
		append(headers, hdr("Content-Type", ctype)...)...), http.StatusCreated, "upload "+name)
	v := decode[struct{ Items []struct{ ID string } }](s.t, a)
	if len(v.Items) != 1 || v.Items[0].ID == "" {
		s.t.Fatalf("upload %s: %s", name, a.body)
	}
	return v.Items[0].ID
}

// resolve resolves the ticket (from any open status).
func (s *stack) resolve(token, ticketID string, headers ...header) {
	s.t.Helper()
	expect(s.t, s.do(http.MethodPost, "/v1/tickets/"+ticketID+"/resolve", token,
		map[string]string{"code": "fixed", "note": "Replaced the cable."}, headers...), http.StatusOK, "resolve "+ticketID)
}

// setUpIntakeMatrix makes client1's intake fixtures, by the operator (or,
// for admin-only routes, the provider's admin) acting there, and client2's
// quarantine item.
func setUpIntakeMatrix(t *testing.T, f *matrixFixtures) {
	t.Helper()
	s, in1 := f.s, acting(f.client1)
	operator, admin := f.tokens[pOperator], f.tokens[pAdmin]

	f.lifecycle = s.createTicket(operator, "Laptop will not boot", in1...)
	f.cancellable = s.createTicket(operator, "Duplicate of a phone call", in1...)
	f.rated = s.createTicket(operator, "Monitor flickers", in1...)
	s.resolve(operator, f.rated.ID, in1...)
	f.linkTarget = s.createTicket(operator, "VPN concentrator overloaded", in1...)
	expect(t, s.do(http.MethodPost, "/v1/tickets/"+f.ticket.ID+"/comments", operator,
		map[string]string{"body": matrixComment}, in1...), http.StatusOK, "comment on client1's ticket")
	f.attachment = s.upload(operator, f.ticket.ID, "traceroute.txt", in1...)
	f.quarantined = s.quarantineAlert(admin, in1...)
	f.client1Markers = append(f.client1Markers,
		f.lifecycle.ID, f.cancellable.ID, f.rated.ID, f.linkTarget.ID, f.attachment, f.quarantined)

	// The read models have the comment and the attachment, and the
	// directory client1's slug (the settings' default address).
	testwait.Until(t, 10*time.Second, "client1's comment, attachment and default address", func() bool {
		return bytes.Contains(s.do(http.MethodGet, "/v1/tickets/"+f.ticket.ID+"/comments", operator, nil, in1...).body, []byte(matrixComment)) &&
			bytes.Contains(s.do(http.MethodGet, "/v1/tickets/"+f.ticket.ID+"/attachments", operator, nil, in1...).body, []byte(f.attachment)) &&
			bytes.Contains(s.do(http.MethodGet, "/v1/settings/intake", operator, nil, in1...).body, []byte(fmt.Sprintf("%q", f.slug1+"@opsdesk.localhost")))
	})
}
