package system_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/opsdesk/opsdesk/libs/auth"
	"github.com/opsdesk/opsdesk/libs/testwait"
)

// sendMail delivers raw to rcpt through intake's SMTP listener.
func (s *stack) sendMail(t *testing.T, from, rcpt string, raw string) {
	t.Helper()
	if s.smtpAddr == "" {
		select {
		case s.smtpAddr = <-s.smtp:
		case <-time.After(10 * time.Second):
			t.Fatal("intake's SMTP listener did not report its address")
		}
	}
	addr := s.smtpAddr
	if err := smtp.SendMail(addr, nil, from, []string{rcpt}, []byte(strings.ReplaceAll(raw, "\n", "\r\n"))); err != nil {
		t.Fatalf("SMTP to %s: %v", rcpt, err)
	}
}

// TestMailAndAlertsEndToEnd (issue 4), through the all-in-one binary: mail
// to the tenant's address at the SMTP listener opens a ticket for the user
// who sent it; an agent replies through the API; the requester's reply by
// mail lands on the same ticket; a mail to an unknown tenant is refused at
// RCPT; and a storm of 100 alerts for one group yields one incident.
func TestMailAndAlertsEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	admin := s.signIn(providerSlug, adminEmail, adminPassword).Access
	s.onboard(admin, "agent.smith@msp.example", "agent smith's passphrase", []string{auth.RoleAgent})
	requesterID := s.onboard(admin, "grace@msp.example", "grace's long passphrase", []string{auth.RoleRequester})
	agent := s.signIn(providerSlug, "agent.smith@msp.example", "agent smith's passphrase").Access
	grace := s.signIn(providerSlug, "grace@msp.example", "grace's long passphrase").Access
	desk := providerSlug + "@opsdesk.localhost"

	s.sendMail(t, "grace@msp.example", desk, "From: Grace Hopper <Grace@msp.example>\nTo: "+desk+
		"\nSubject: Printer on floor 2 prints blank pages\nMessage-ID: <g1@msp.example>\nDate: Tue, 1 Dec 2026 09:00:00 +0000"+
		"\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nEvery page comes out blank since this morning.\n")
	var tk ticketBody
	testwait.Until(t, 15*time.Second, "the mailed ticket in the requester's list", func() bool {
		a := s.do(http.MethodGet, "/v1/tickets", grace, nil)
		var page struct{ Items []ticketBody }
		if a.status != http.StatusOK || json.Unmarshal(a.body, &page) != nil || len(page.Items) != 1 {
			return false
		}
		tk = page.Items[0]
		return true
	})
	full := decode[struct {
		Channel     string `json:"channel"`
		RequesterID string `json:"requester_id"`
		Title       string `json:"title"`
	}](t, expect(t, s.do(http.MethodGet, "/v1/tickets/"+tk.ID, agent, nil), http.StatusOK, "the mailed ticket"))
	if full.Channel != "email" || full.RequesterID != requesterID || full.Title != "Printer on floor 2 prints blank pages" {
		t.Fatalf("mailed ticket %+v", full)
	}

	reply := expect(t, s.do(http.MethodPost, "/v1/tickets/"+tk.ID+"/comments", agent, map[string]string{"body": "Is the toner light on?"}),
		http.StatusOK, "agent reply")
	events := decode[struct {
		Items []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
	}](t, expect(t, s.do(http.MethodGet, "/v1/tickets/"+tk.ID+"/events", agent, nil,
		hdr("X-Consistency-Token", reply.header.Get("X-Consistency-Token"))...), http.StatusOK, "history"))
	var ourID string
	for _, e := range events.Items {
		var c struct {
			MessageID string `json:"message_id"`
			Body      string `json:"body"`
		}
		if json.Unmarshal(e.Data, &c) == nil && c.Body == "Is the toner light on?" {
			ourID = c.MessageID
		}
	}
	if ourID == "" {
		t.Fatalf("the agent's reply has no Message-ID: %+v", events.Items)
	}

	s.sendMail(t, "grace@msp.example", desk, "From: grace@msp.example\nTo: "+desk+"\nSubject: Re: Printer on floor 2"+
		"\nMessage-ID: <g2@msp.example>\nIn-Reply-To: <"+ourID+">\nReferences: <g1@msp.example> <"+ourID+">"+
		"\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nYes, it blinks orange.\n\n"+
		"On Tue, 1 Dec 2026 at 10:00, Help Desk <"+desk+"> wrote:\n> Is the toner light on?\n")
	testwait.Until(t, 15*time.Second, "the requester's mailed reply on the ticket", func() bool {
		a := s.do(http.MethodGet, "/v1/tickets/"+tk.ID+"/comments", grace, nil)
		var list struct {
			Items []struct{ Body, Channel string }
		}
		if json.Unmarshal(a.body, &list) != nil || len(list.Items) != 2 {
			return false
		}
		if list.Items[1].Body != "Yes, it blinks orange." || list.Items[1].Channel != "email" {
			t.Fatalf("mailed reply %+v", list.Items[1])
		}
		return true
	})
	// The agent answers by mail too: an agent's reply, not the requester's.
	s.sendMail(t, "agent.smith@msp.example", desk, "From: agent.smith@msp.example\nTo: "+desk+"\nSubject: Re: ["+tk.Number+"] Printer"+
		"\nMessage-ID: <a1@msp.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\nA new toner is on its way.\n")
	testwait.Until(t, 15*time.Second, "the agent's mailed reply on the ticket", func() bool {
		a := s.do(http.MethodGet, "/v1/tickets/"+tk.ID+"/comments", agent, nil)
		var list struct {
			Items []struct {
				Body       string `json:"body"`
				AuthorRole string `json:"author_role"`
			}
		}
		if json.Unmarshal(a.body, &list) != nil || len(list.Items) != 3 {
			return false
		}
		if c := list.Items[2]; c.Body != "A new toner is on its way." || c.AuthorRole != "agent" {
			t.Fatalf("agent's mailed reply %+v", c)
		}
		return true
	})

	// Still one ticket: the replies did not open another.
	page := decode[struct{ Items []ticketBody }](t, expect(t, s.do(http.MethodGet, "/v1/tickets", grace, nil), http.StatusOK, "list"))
	if len(page.Items) != 1 {
		t.Fatalf("the requester has %d tickets, want 1", len(page.Items))
	}
	if err := smtp.SendMail(s.smtpAddr, nil, "x@example.com", []string{"help@unclaimed.example"}, []byte("Subject: x\r\n\r\nx")); err == nil ||
		!strings.Contains(err.Error(), "550") {
		t.Fatalf("mail to an address no tenant claimed: %v, want 550", err)
	}
	// An unknown sender becomes a requester user of the tenant (identity
	// reacts to the mailed ticket), and the ticket then names that user.
	s.sendMail(t, "newcomer@example.org", desk, "From: Newcomer <newcomer@example.org>\nTo: "+desk+
		"\nSubject: Access to the wiki\nMessage-ID: <n1@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain\n\nPlease give me access.\n")
	var newcomer struct {
		ID    string   `json:"id"`
		Roles []string `json:"roles"`
	}
	testwait.Until(t, 15*time.Second, "the unknown sender onboarded as a requester, and named on the ticket", func() bool {
		a := s.do(http.MethodGet, "/v1/users?q=newcomer", admin, nil)
		var users struct {
			Items []struct {
				ID    string   `json:"id"`
				Email string   `json:"email"`
				Roles []string `json:"roles"`
			}
		}
		if json.Unmarshal(a.body, &users) != nil {
			return false
		}
		for _, u := range users.Items {
			if u.Email == "newcomer@example.org" {
				newcomer.ID, newcomer.Roles = u.ID, u.Roles
			}
		}
		if newcomer.ID == "" {
			return false
		}
		a = s.do(http.MethodGet, "/v1/tickets?requester="+newcomer.ID, agent, nil)
		var page struct {
			Items []struct {
				RequesterID string `json:"requester_id"`
				Title       string `json:"title"`
			}
		}
		return json.Unmarshal(a.body, &page) == nil && len(page.Items) == 1 && page.Items[0].Title == "Access to the wiki"
	})
	if len(newcomer.Roles) != 1 || newcomer.Roles[0] != auth.RoleRequester {
		t.Fatalf("onboarded sender has roles %v, want requester", newcomer.Roles)
	}

	// The tenant's own address, claimed in its settings, reaches it too
	// (the MTA of msp.example forwards help@ to this listener).
	expect(t, s.do(http.MethodPut, "/v1/settings/intake", admin, map[string]any{"reopen_window_days": 14, "auto_close_days": 7,
		"unknown_senders": "create_requester", "alerts_auto_resolve": false, "inbound_addresses": []string{"help@msp.example"}}),
		http.StatusOK, "claim help@msp.example")
	s.sendMail(t, "grace@msp.example", "help@msp.example", "From: grace@msp.example\nTo: help@msp.example"+
		"\nSubject: Second monitor flickers\nMessage-ID: <g3@msp.example>\nMIME-Version: 1.0\nContent-Type: text/plain\n\nIt flickers.\n")
	testwait.Until(t, 15*time.Second, "the mail to the tenant's own address in the requester's list", func() bool {
		var page struct{ Items []ticketBody }
		a := s.do(http.MethodGet, "/v1/tickets", grace, nil)
		return json.Unmarshal(a.body, &page) == nil && len(page.Items) == 2
	})

	// Mail for a tenant that does not exist is refused at RCPT.
	err := smtp.SendMail(s.smtpAddr, nil, "x@example.com", []string{"nobody-here@opsdesk.localhost"}, []byte("Subject: x\r\n\r\nx"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("mail to an unknown tenant: %v, want 550", err)
	}

	// An alert storm: 100 alerts of one group, one incident.
	var alerts []map[string]any
	for i := range 100 {
		alerts = append(alerts, map[string]any{"status": "firing", "fingerprint": fmt.Sprintf("%016x", i+1),
			"labels":      map[string]string{"alertname": "NodeDown", "instance": fmt.Sprintf("node-%d", i), "severity": "critical"},
			"annotations": map[string]string{"summary": fmt.Sprintf("node-%d is down", i)}, "startsAt": "2026-12-01T08:00:00Z"})
	}
	payload := map[string]any{"version": "4", "groupKey": `{}:{alertname="NodeDown"}`, "status": "firing", "receiver": "opsdesk",
		"groupLabels": map[string]string{"alertname": "NodeDown"}, "alerts": alerts}
	a := expect(t, s.do(http.MethodPost, "/v1/inbound/alerts", admin, payload), http.StatusOK, "alert storm")
	storm := decode[struct {
		Incidents []struct {
			TicketID string `json:"ticket_id"`
			Created  bool   `json:"created"`
			Alerts   int    `json:"alerts"`
		} `json:"incidents"`
	}](t, a)
	if len(storm.Incidents) != 1 || !storm.Incidents[0].Created || storm.Incidents[0].Alerts != 100 {
		t.Fatalf("storm answer %s", a.body)
	}
	hist := expect(t, s.do(http.MethodGet, "/v1/tickets/"+storm.Incidents[0].TicketID+"/events", agent, nil,
		hdr("X-Consistency-Token", a.header.Get("X-Consistency-Token"))...), http.StatusOK, "incident history")
	if n := strings.Count(string(hist.body), "opsdesk.ticket.alert_received.v1"); n != 100 {
		t.Fatalf("the incident lists %d alerts, want 100", n)
	}
	incidents := decode[struct{ Items []ticketBody }](t, expect(t, s.do(http.MethodGet, "/v1/tickets?type=incident&tag=alert", agent, nil),
		http.StatusOK, "incidents"))
	if len(incidents.Items) != 1 {
		t.Fatalf("%d alert incidents, want 1", len(incidents.Items))
	}
}
