package mail

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const ownDomain = "opsdesk.localhost"

type wantAttachment struct {
	name, ctype, cid string
	inline           bool
	size             int
	prefix           string // expected start of Data
}

type fixture struct {
	file       string
	from       Address
	subject    string
	messageID  string
	threadIDs  []string
	date       time.Time
	reply      string   // exact Reply, when set
	contains   []string // substrings Reply must have
	excludes   []string // substrings Reply must not have (quoted history)
	text       []string // substrings Text must have
	html       bool     // an HTML part is expected
	atts       []wantAttachment
	auto       AutoKind
	loop       bool
	loopReason string
	token      string // TicketToken(subject, "OPS-")
}

var fixtures = []fixture{
	{
		file:      "outlook_reply.eml",
		from:      Address{Name: "Grace Hopper", Email: "grace.hopper@contoso.com"},
		subject:   "RE: [OPS-1042] VPN drops every hour",
		messageID: "AM7PR03MB6449C1D0E5B0F3A1E2C9A8B7D4F12@AM7PR03MB6449.eurprd03.prod.outlook.com",
		threadIDs: []string{"c_01JB9A7R2D3F4G5H6J7K8L9M0N@opsdesk.localhost", "t_01JB8Z3K6Q9W2X4Y5V7T0N1M2P@opsdesk.localhost"},
		date:      time.Date(2025, 11, 4, 10, 7, 29, 0, time.UTC),
		reply: "Hi team,\n\nit happened again at 10:05, right after the Teams call started. " +
			"The client log says \"tunnel keepalive timeout\".\n\nThanks,\nGrace",
		html:  true,
		token: "OPS-1042",
	},
	{
		file:      "gmail_reply.eml",
		from:      Address{Name: "Ada Lovelace", Email: "ada@example.com"},
		subject:   "Re: [OPS-1043] Cannot log in to the expense portal",
		messageID: "CAJx9pQ+3vT7Kq2bN1mWc0r8Z4yH6dF5sE2aL9uP0oI7jK3hG1w@mail.gmail.com",
		threadIDs: []string{
			"c_01JB9QW3E4R5T6Y7U8I9O0P1A2@opsdesk.localhost",
			"c_01JB9A7R2D3F4G5H6J7K8L9M0N@opsdesk.localhost",
			"t_01JB8Z3K6Q9W2X4Y5V7T0N1M2P@opsdesk.localhost",
		},
		date:     time.Date(2025, 11, 4, 9, 20, 31, 0, time.UTC),
		reply:    "Yes, clearing the cookies fixed it \u2013 thank you!\n\nYou can close the ticket.",
		text:     []string{"Analytical Engines Ltd", "> please clear the browser cookies"},
		html:     true,
		excludes: []string{"wrote:", "Analytical Engines"},
		token:    "OPS-1043",
	},
	{
		file:      "forward.eml",
		from:      Address{Name: "Bob Builder", Email: "bob@example.com"},
		subject:   "Fwd: Invoice portal error",
		messageID: "CAF8rRk2wN9mL1pO0qZ7xY6vU5tS4rQ3pO2nM1lK0jI9hG8fE7d@mail.gmail.com",
		date:      time.Date(2025, 11, 4, 8, 2, 11, 0, time.UTC),
		contains: []string{
			"Please help with the below, finance cannot pay this invoice.",
			"---------- Forwarded message ---------\nFrom: Vendor Billing <billing@vendor.example>",
			"To: <bob@example.com>\n\n\nDear customer,", // forwarded part kept verbatim
			"failed with code E_PORTAL_503",
			"> This mailbox is not monitored.",
		},
		excludes: []string{"Sent from my iPhone"},
	},
	{
		file:      "latin1.eml",
		from:      Address{Name: "Jürgen Müller", Email: "juergen.mueller@example.de"},
		subject:   "AW: [OPS-77] Drucker im Büro – kaputt",
		messageID: "5a1e2f3c-9d8b-4c7a-b6e5-1f2d3c4b5a69@example.de",
		threadIDs: []string{"c_01JB7M3N4B5V6C7X8Z9A0S1D2F@opsdesk.localhost"},
		date:      time.Date(2025, 11, 4, 8, 30, 0, 0, time.UTC),
		contains:  []string{"der Drucker im Büro 2.14", "das Gerät neu gestartet", "Könnt ihr", "Grüße\nJürgen Müller"},
		excludes:  []string{"schrieb", "Hallo Herr Müller"},
		text:      []string{"Hallo Herr Müller"},
		token:     "OPS-77",
	},
	{
		file:      "iso2022jp.eml",
		from:      Address{Name: "山田太郎", Email: "taro.yamada@example.jp"},
		subject:   "プリンターが動きません",
		messageID: "20251104180500.4F2A1@example.jp",
		date:      time.Date(2025, 11, 4, 9, 5, 0, 0, time.UTC),
		reply:     "お世話になっております。\n三階のプリンターが動きません。\n確認をお願いします。\n\n山田",
	},
	{
		file:      "html_only.eml",
		from:      Address{Name: "Carol Danvers", Email: "carol@example.org"},
		subject:   "Printer on floor 3",
		messageID: "0101019a5b6c7d8e-2f1e0d9c-8b7a-4c5d-9e6f-1a2b3c4d5e6f-000000@us-west-2.amazonses.com",
		date:      time.Date(2025, 11, 5, 19, 22, 10, 0, time.UTC),
		contains:  []string{"Hello,", "the printer on floor 3 shows *Error 49* since this morning.", "https://vendor.example/manual/e49", "Café team"},
		excludes:  []string{"<p>", "<b>", "margin", "<!DOCTYPE"},
		html:      true,
	},
	{
		file:      "attachments.eml",
		from:      Address{Name: "Dave Lister", Email: "dave@example.net"},
		subject:   "Screenshot of the error + report",
		messageID: "8F2C1A7E-5B3D-4E6F-9A8B-7C6D5E4F3A2B@example.net",
		date:      time.Date(2025, 11, 6, 11, 0, 0, 0, time.UTC),
		reply:     "The sync client shows this error (screenshot below), report attached.\n\n[cid:screenshot@01DC4F]\n\nDave",
		html:      true,
		atts: []wantAttachment{
			{name: "Q3 report.pdf", ctype: "application/pdf", size: 335, prefix: "%PDF-1.4\n"},
			// Windows path in the filename must not survive.
			{name: "sync.log", ctype: "text/plain", size: 59, prefix: "2025-11-06T10:58:01Z ERROR sync: 409 conflict on /Shared/Q3"},
			// No filename: generated from position and type.
			{name: "attachment-3.png", ctype: "image/png", cid: "screenshot@01DC4F", inline: true, size: 69, prefix: "\x89PNG\r\n\x1a\n"},
		},
	},
	{
		file:      "bounce.eml",
		from:      Address{Name: "Mail Delivery System", Email: "mailer-daemon@mx.contoso.example"},
		subject:   "Undelivered Mail Returned to Sender",
		messageID: "20251106120005.7D2C81A0B4@mx.contoso.example",
		date:      time.Date(2025, 11, 6, 12, 0, 5, 0, time.UTC),
		contains:  []string{"could not\nbe delivered", "550 5.1.1"},
		atts: []wantAttachment{
			{name: "attachment-1.txt", ctype: "message/delivery-status", size: 449, prefix: "Reporting-MTA: dns; mx.contoso.example"},
			{name: "attachment-2.txt", ctype: "text/rfc822-headers", size: 228, prefix: "From: OpsDesk Support"},
		},
		auto:       AutoBounce,
		loop:       true,
		loopReason: "bounce",
	},
	{
		file:       "out_of_office.eml",
		from:       Address{Name: "Erin Example", Email: "erin@contoso.com"},
		subject:    "Automatic reply: [OPS-1042] VPN drops every hour",
		messageID:  "f3a9c2d1e0b84a7f9c6d5e4b3a291807@AM0PR02MB1234.eurprd02.prod.outlook.com",
		threadIDs:  []string{"c_01JB9A7R2D3F4G5H6J7K8L9M0N@opsdesk.localhost"},
		date:       time.Date(2025, 11, 3, 16, 12, 41, 0, time.UTC),
		contains:   []string{"out of the office until 10 November"},
		auto:       AutoReplied,
		loop:       true,
		loopReason: "auto_replied",
		token:      "OPS-1042",
	},
	{
		file:       "newsletter.eml",
		from:       Address{Name: "SaaSy Weekly", Email: "news@saasy.example"},
		subject:    "Your November product update 🚀",
		messageID:  "e4c7b1a2d3f4.0.1762527602@mail123.suw91.mcsv.net",
		date:       time.Date(2025, 11, 7, 15, 0, 2, 0, time.UTC),
		contains:   []string{"Dark mode, faster exports and a new API."},
		html:       true,
		auto:       AutoBulk,
		loop:       true,
		loopReason: "bulk",
	},
	{
		// A customer's reply to our notification: our ids in In-Reply-To and
		// References are expected and must not count as a loop.
		file:      "reply_to_our_mail.eml",
		from:      Address{Name: "Heidi", Email: "heidi@example.com"},
		subject:   "Re: Your ticket was updated",
		messageID: "A1B2C3D4-E5F6-4789-ABCD-0123456789AB@example.com",
		threadIDs: []string{"c_01JBBX2C3V4B5N6M7Q8W9E0R1T@opsdesk.localhost", "t_01JB8Z3K6Q9W2X4Y5V7T0N1M2P@opsdesk.localhost"},
		date:      time.Date(2025, 11, 6, 8, 14, 0, 0, time.UTC),
		reply:     "Still broken after the update, same error on both laptops.",
		text:      []string{"Sent from my iPhone", "we rolled out the fix"},
	},
	{
		// Our own outbound mail delivered back to us.
		file:       "own_outbound.eml",
		from:       Address{Name: "OpsDesk Support", Email: "support@opsdesk.localhost"},
		subject:    "[OPS-1042] Your ticket was updated",
		messageID:  "c_01JBC5V6B7N8M9Q0W1E2R3T4Y5@opsdesk.localhost",
		threadIDs:  []string{"t_01JB8Z3K6Q9W2X4Y5V7T0N1M2P@opsdesk.localhost"},
		date:       time.Date(2025, 11, 6, 12, 0, 3, 0, time.UTC),
		reply:      "An agent replied to your ticket OPS-1042:\n\nWe rolled out the fix. Does it work now?",
		loop:       true,
		loopReason: "own_message_id",
		token:      "OPS-1042",
	},
	{
		// Decision: a multipart cut off before its closing boundary is
		// tolerated; the text and the partial attachment are kept.
		file:      "truncated_multipart.eml",
		from:      Address{Name: "Ivan Petrov", Email: "ivan@example.ru"},
		subject:   "Logs attached",
		messageID: "trunc-1@example.ru",
		date:      time.Date(2025, 11, 7, 7, 0, 0, 0, time.UTC),
		reply:     "Here are the logs from the failing server.",
		atts: []wantAttachment{
			{name: "server.log.gz", ctype: "application/gzip", size: 29, prefix: "\x1f\x8b\x08"},
		},
	},
}

func TestParseFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			m := mustParse(t, fx.file)
			if m.From != fx.from {
				t.Errorf("From = %+v, want %+v", m.From, fx.from)
			}
			if m.Subject != fx.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, fx.subject)
			}
			if m.MessageID != fx.messageID {
				t.Errorf("MessageID = %q, want %q", m.MessageID, fx.messageID)
			}
			if got := m.ThreadIDs(); !slices.Equal(got, fx.threadIDs) {
				t.Errorf("ThreadIDs = %q, want %q", got, fx.threadIDs)
			}
			if !m.Date.Equal(fx.date) {
				t.Errorf("Date = %v, want %v", m.Date, fx.date)
			}
			if fx.reply != "" && m.Reply != fx.reply {
				t.Errorf("Reply =\n%q\nwant\n%q", m.Reply, fx.reply)
			}
			for _, s := range fx.contains {
				if !strings.Contains(m.Reply, s) {
					t.Errorf("Reply lacks %q:\n%s", s, m.Reply)
				}
			}
			for _, s := range fx.excludes {
				if strings.Contains(m.Reply, s) {
					t.Errorf("Reply has quoted %q:\n%s", s, m.Reply)
				}
			}
			for _, s := range fx.text {
				if !strings.Contains(m.Text, s) {
					t.Errorf("Text lacks %q:\n%s", s, m.Text)
				}
			}
			if strings.Contains(m.Text, "\r") {
				t.Errorf("Text has CR")
			}
			if (m.HTML != "") != fx.html {
				t.Errorf("HTML present = %v, want %v", m.HTML != "", fx.html)
			}
			if len(m.Attachments) != len(fx.atts) {
				t.Fatalf("got %d attachments, want %d: %+v", len(m.Attachments), len(fx.atts), names(m.Attachments))
			}
			for i, w := range fx.atts {
				a := m.Attachments[i]
				if a.Filename != w.name || a.ContentType != w.ctype || a.ContentID != w.cid || a.Inline != w.inline || len(a.Data) != w.size {
					t.Errorf("attachment %d = {%q %q cid=%q inline=%v %d bytes}, want {%q %q cid=%q inline=%v %d bytes}",
						i, a.Filename, a.ContentType, a.ContentID, a.Inline, len(a.Data), w.name, w.ctype, w.cid, w.inline, w.size)
				}
				if !bytes.HasPrefix(a.Data, []byte(w.prefix)) {
					t.Errorf("attachment %d data starts %q, want %q", i, a.Data[:min(len(a.Data), 16)], w.prefix)
				}
			}
			if m.Auto != fx.auto {
				t.Errorf("Auto = %q, want %q", m.Auto, fx.auto)
			}
			loop, why := m.IsLoop(ownDomain)
			if loop != fx.loop || why != fx.loopReason {
				t.Errorf("IsLoop = %v %q, want %v %q", loop, why, fx.loop, fx.loopReason)
			}
			if got := TicketToken(m.Subject, "OPS-"); got != fx.token {
				t.Errorf("TicketToken = %q, want %q", got, fx.token)
			}
		})
	}
}

// Every fixture file must be in the table, so new ones get expectations.
func TestFixturesListed(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{"no_from.eml": true} // asserted in TestParseErrors
	for _, fx := range fixtures {
		listed[fx.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no expectations", f)
		}
	}
}

func TestParseDetails(t *testing.T) {
	m := mustParse(t, "outlook_reply.eml")
	if want := []Address{{Name: "Lovelace, Ada", Email: "ada.lovelace@contoso.com"}}; !slices.Equal(m.Cc, want) {
		t.Errorf("Cc = %+v, want %+v", m.Cc, want)
	}
	if want := []Address{{Name: "OpsDesk Support", Email: "support@opsdesk.localhost"}}; !slices.Equal(m.To, want) {
		t.Errorf("To = %+v, want %+v", m.To, want)
	}
	if want := []string{"t_01JB8Z3K6Q9W2X4Y5V7T0N1M2P@opsdesk.localhost", "c_01JB9A7R2D3F4G5H6J7K8L9M0N@opsdesk.localhost"}; !slices.Equal(m.References, want) {
		t.Errorf("References = %q, want %q", m.References, want)
	}
	if got := m.Headers["Thread-Topic"]; !slices.Equal(got, []string{"[OPS-1042] VPN drops every hour"}) {
		t.Errorf("Headers[Thread-Topic] = %q", got)
	}
	if got := m.Headers["Message-Id"]; len(got) != 1 || !strings.HasPrefix(got[0], "<AM7PR03MB") {
		t.Errorf("Headers[Message-Id] = %q", got)
	}
	if !strings.Contains(m.HTML, `<div id="divRplyFwdMsg">`) {
		t.Errorf("HTML not kept: %q", m.HTML)
	}

	// Encoded-word headers are stored decoded.
	m = mustParse(t, "latin1.eml")
	if got := m.Headers["Subject"]; !slices.Equal(got, []string{"AW: [OPS-77] Drucker im Büro – kaputt"}) {
		t.Errorf("Headers[Subject] = %q", got)
	}

	m = mustParse(t, "newsletter.eml")
	if want := []Address{{Name: "SaaSy Weekly", Email: "news@saasy.example"}}; !slices.Equal(m.ReplyTo, want) {
		t.Errorf("ReplyTo = %+v, want %+v", m.ReplyTo, want)
	}
}

func TestParseErrors(t *testing.T) {
	var pe *ParseError
	for name, raw := range map[string][]byte{
		"no from":   readFixture(t, "no_from.eml"),
		"empty":     nil,
		"blank":     []byte("\r\n\r\n  \n"),
		"garbage":   {0x00, 0xff, 0xfe, 0x13, 0x37, 0x80, 0x81, '\n', 0x9f, 0x00, '\n', '\n', 0xde, 0xad},
		"body only": []byte("hello there, this is not an e-mail\n"),
		"bad from":  []byte("From: nobody\nSubject: x\n\nbody\n"),
	} {
		_, err := Parse(raw, Limits{})
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want *ParseError", name, err)
		}
	}
	// Parse error reasons are for quarantine notes; make sure there is one.
	_, err := Parse(readFixture(t, "no_from.eml"), Limits{})
	if errors.As(err, &pe) && !strings.Contains(pe.Reason, "From") {
		t.Errorf("reason = %q", pe.Reason)
	}
}

// Sloppy but understandable mail is accepted.
func TestParseTolerant(t *testing.T) {
	for name, tc := range map[string]struct {
		raw, from, text string
	}{
		"broken From, address still visible": {
			raw:  "From: Ada Lovelace ada@example.com>\nSubject: hi\n\nbody\n",
			from: "ada@example.com", text: "body",
		},
		"multipart without boundary": {
			raw:  "From: a@example.com\nContent-Type: multipart/mixed\n\nplain body\n",
			from: "a@example.com", text: "plain body",
		},
		"bad base64 text": {
			raw:  "From: a@example.com\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=!!!@@@\n",
			from: "a@example.com", text: "hello world",
		},
		"unknown charset": {
			raw:  "From: a@example.com\nContent-Type: text/plain; charset=x-klingon\n\nqapla\n",
			from: "a@example.com", text: "qapla",
		},
		"part without Content-Type is text": {
			raw:  "From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nuntyped body\n--b\nContent-Type: text/plain\n\ntyped body\n--b--\n",
			from: "a@example.com", text: "typed body\n--\nuntyped body",
		},
		"invalid utf-8 declared as utf-8": {
			raw:  "From: a@example.com\nSubject: caf\xe9\nContent-Type: text/plain; charset=utf-8\n\ncaf\xe9\n",
			from: "a@example.com", text: "caf",
		},
	} {
		m, err := Parse([]byte(tc.raw), Limits{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if m.From.Email != tc.from || !strings.Contains(m.Text, tc.text) || len(m.Attachments) != 0 {
			t.Errorf("%s: From=%q Text=%q attachments=%q", name, m.From.Email, m.Text, names(m.Attachments))
		}
		checkInvariants(t, m, DefaultLimits())
	}
}

func TestLimits(t *testing.T) {
	raw := readFixture(t, "attachments.eml")
	var tl *TooLargeError

	_, err := Parse(raw, Limits{MaxMessageBytes: int64(len(raw) - 1)})
	if !errors.As(err, &tl) || tl.What != WhatMessage || tl.Size != int64(len(raw)) || tl.Limit != int64(len(raw)-1) {
		t.Errorf("message limit: err = %v", err)
	}

	_, err = Parse(raw, Limits{MaxAttachmentBytes: 100})
	if !errors.As(err, &tl) || tl.What != WhatAttachment || tl.Size != 335 || tl.Limit != 100 {
		t.Errorf("attachment limit: err = %v", err)
	}

	_, err = Parse(raw, Limits{MaxAttachments: 2})
	if !errors.As(err, &tl) || tl.What != WhatAttachments || tl.Size != 3 || tl.Limit != 2 {
		t.Errorf("attachment count: err = %v", err)
	}

	// Exactly at the limits is fine.
	if _, err := Parse(raw, Limits{MaxMessageBytes: int64(len(raw)), MaxAttachmentBytes: 335, MaxAttachments: 3}); err != nil {
		t.Errorf("at limits: %v", err)
	}

	// The size check comes before parsing: garbage over the limit is TooLarge.
	_, err = Parse(bytes.Repeat([]byte{0xff}, 2048), Limits{MaxMessageBytes: 1024})
	if !errors.As(err, &tl) || tl.What != WhatMessage {
		t.Errorf("oversized garbage: err = %v", err)
	}

	// Defaults apply per zero field.
	if d := (Limits{MaxAttachments: 5}).withDefaults(); d.MaxAttachments != 5 || d.MaxMessageBytes != 25<<20 || d.MaxAttachmentBytes != 10<<20 {
		t.Errorf("withDefaults = %+v", d)
	}
}

func TestAutoKind(t *testing.T) {
	const body = "\n\nhello\n"
	for _, tc := range []struct {
		headers string
		want    AutoKind
	}{
		{"Auto-Submitted: no\n", AutoNone},
		{"Auto-Submitted: auto-replied\n", AutoReplied},
		{"Auto-Submitted: Auto-Replied; owner-email=\"x@example.com\"\n", AutoReplied},
		{"Auto-Submitted: auto-generated\n", AutoGenerated},
		{"Auto-Submitted: auto-notified\n", AutoGenerated},
		{"X-Autoreply: yes\n", AutoReplied},
		{"X-Autorespond: vacation\n", AutoReplied},
		{"X-Autoreply-From: a@example.com\n", AutoReplied},
		{"Precedence: auto_reply\n", AutoReplied},
		{"X-Autogenerated: Reply\n", AutoReplied},
		{"Precedence: bulk\n", AutoBulk},
		{"Precedence: junk\n", AutoBulk},
		{"Precedence: list\n", AutoBulk},
		{"List-Id: <team.example.com>\nPrecedence: first-class\n", AutoBulk},
		// A person's mail relayed by a team list is not bulk.
		{"List-Id: <team.example.com>\n", AutoNone},
		{"X-Auto-Response-Suppress: All\n", AutoNone},
		{"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n", AutoBounce},
		{"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n", AutoNone},
		{"X-Failed-Recipients: gone@example.com\n", AutoBounce},
		// DSNs carry Auto-Submitted too; bounce is the more useful answer.
		{"Auto-Submitted: auto-replied\nX-Failed-Recipients: gone@example.com\n", AutoBounce},
	} {
		m, err := Parse([]byte("From: Someone <someone@example.com>\n"+tc.headers+body), Limits{})
		if err != nil {
			t.Errorf("%q: %v", tc.headers, err)
			continue
		}
		if m.Auto != tc.want {
			t.Errorf("%q: Auto = %q, want %q", tc.headers, m.Auto, tc.want)
		}
	}

	for _, tc := range []struct {
		from, returnPath string
		want             AutoKind
	}{
		{"MAILER-DAEMON@mx.example.com", "", AutoBounce},
		{"Mailer-Daemon <mailer-daemon@mx.example.com>", "Return-Path: <>\n", AutoBounce},
		{"postmaster@example.com", "Return-Path: <>\n", AutoBounce},
		// A postmaster writing to us as a person has a real return path.
		{"postmaster@example.com", "Return-Path: <postmaster@example.com>\n", AutoNone},
		{"postmaster@example.com", "", AutoNone},
	} {
		m, err := Parse([]byte(tc.returnPath+"From: "+tc.from+body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if m.Auto != tc.want {
			t.Errorf("From %q %q: Auto = %q, want %q", tc.from, tc.returnPath, m.Auto, tc.want)
		}
	}
}

func TestIsLoop(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		own  string
		loop bool
		why  string
	}{
		{Message{MessageID: "abc@customer.example", InReplyTo: []string{"c_1@opsdesk.localhost"}, References: []string{"t_1@opsdesk.localhost"}}, "opsdesk.localhost", false, ""},
		{Message{MessageID: "c_1@OpsDesk.Localhost"}, "opsdesk.localhost", true, "own_message_id"},
		{Message{MessageID: "c_1@opsdesk.localhost"}, "@opsdesk.localhost", true, "own_message_id"},
		// Subdomains and look-alikes are not ours.
		{Message{MessageID: "c_1@mail.opsdesk.localhost"}, "opsdesk.localhost", false, ""},
		{Message{MessageID: "c_1@evilopsdesk.localhost"}, "opsdesk.localhost", false, ""},
		{Message{MessageID: "c_1@opsdesk.localhost"}, "", false, ""},
		{Message{Auto: AutoBulk}, "opsdesk.localhost", true, "bulk"},
		{Message{Auto: AutoGenerated}, "opsdesk.localhost", true, "auto_generated"},
	} {
		loop, why := tc.m.IsLoop(tc.own)
		if loop != tc.loop || why != tc.why {
			t.Errorf("%+v IsLoop(%q) = %v %q, want %v %q", tc.m, tc.own, loop, why, tc.loop, tc.why)
		}
	}
}

func TestThreadIDs(t *testing.T) {
	m := Message{
		InReplyTo:  []string{"c@x"},
		References: []string{"a@x", "b@x", "c@x", "b@x"},
	}
	if got, want := m.ThreadIDs(), []string{"c@x", "b@x", "a@x"}; !slices.Equal(got, want) {
		t.Errorf("ThreadIDs = %q, want %q", got, want)
	}
	if got := (&Message{}).ThreadIDs(); len(got) != 0 {
		t.Errorf("empty ThreadIDs = %q", got)
	}
}

func TestParseIDs(t *testing.T) {
	for in, want := range map[string][]string{
		"<a@x> <b@x>":                       {"a@x", "b@x"},
		"<a@x>\n\t<b@x>,<c@x>":              {"a@x", "b@x", "c@x"},
		"<a@x> (Ada's message of 3 Nov)":    {"a@x"},
		"bare@x":                            {"bare@x"},
		"  ":                                nil,
		"Your message of Mon 3 Nov <old@x>": {"old@x"},
		"<not an id> <ok@x>":                {"ok@x"},
	} {
		if got := parseIDs(in); !slices.Equal(got, want) {
			t.Errorf("parseIDs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTicketToken(t *testing.T) {
	for _, tc := range []struct{ subject, prefix, want string }{
		{"[OPS-1042] VPN drops", "OPS-", "OPS-1042"},
		{"Re: Fwd: [OPS-12] x", "OPS-", "OPS-12"},
		{"RE: AW: [ops-7] Drucker", "OPS-", "OPS-7"},
		{"Re: [ OPS-99 ] spaced", "OPS-", "OPS-99"},
		{"Problem with OPS-1042", "OPS-", ""},
		{"[OPS-] empty", "OPS-", ""},
		{"[OPS-12a] not a number", "OPS-", ""},
		{"[OPS-12", "OPS-", ""},
		{"[OPSX-12] other prefix", "OPS-", ""},
		{"[JIRA-5] then [OPS-6]", "OPS-", "OPS-6"},
		{"[OPS-1] and [OPS-2]", "OPS-", "OPS-1"},
		{"[OPS-1234567890123456789] too long", "OPS-", ""},
		{"[HD#55] custom", "HD#", "HD#55"},
		{"[55]", "", ""},
		{"", "OPS-", ""},
		{"[[OPS-3]]", "OPS-", "OPS-3"},
	} {
		if got := TicketToken(tc.subject, tc.prefix); got != tc.want {
			t.Errorf("TicketToken(%q, %q) = %q, want %q", tc.subject, tc.prefix, got, tc.want)
		}
	}
}

func TestSanitizeFilename(t *testing.T) {
	long := strings.Repeat("é", 200) + ".pdf" // 404 bytes
	for _, tc := range []struct{ in, ct, want string }{
		{"report.pdf", "application/pdf", "report.pdf"},
		{"../../etc/passwd", "text/plain", "passwd"},
		{`C:\Users\ada\log.txt`, "text/plain", "log.txt"},
		{"evil\u202Egpj.exe", "application/octet-stream", "evilgpj.exe"},
		{"a\x00b\r\nc.txt", "text/plain", "abc.txt"},
		{"", "image/png", "attachment-4.png"},
		{"..", "application/pdf", "attachment-4.pdf"},
		{"dir/", "application/x-unknown", "attachment-4.bin"},
		{"  ", "image/jpeg", "attachment-4.jpg"},
		{"bad\xffname.txt", "text/plain", "badname.txt"},
		{long, "application/pdf", strings.Repeat("é", 125) + ".pdf"},
	} {
		if got := sanitizeFilename(tc.in, tc.ct, 4); got != tc.want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func mustParse(t *testing.T, name string) *Message {
	t.Helper()
	m, err := Parse(readFixture(t, name), Limits{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	checkInvariants(t, m, DefaultLimits())
	return m
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func names(atts []Attachment) []string {
	var n []string
	for _, a := range atts {
		n = append(n, a.Filename)
	}
	return n
}
