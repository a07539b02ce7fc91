package mail

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		f.Add(readFixture(f, filepath.Base(file)))
	}
	// Small limits so the fuzzer reaches the limit paths too.
	lim := Limits{MaxMessageBytes: 1 << 20, MaxAttachmentBytes: 64 << 10, MaxAttachments: 4}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw, lim)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with error")
			}
			return
		}
		checkInvariants(t, m, lim)
	})
}

func FuzzStripReply(f *testing.F) {
	for _, s := range []string{
		"hi\n\nOn Tue, 3 Nov 2025 at 09:12, Ada <\nada@example.com> wrote:\n> x\n",
		"a\n-----Original Message-----\nFrom: b\n",
		"a\n________________________________\nFrom: b\nSent: c\nTo: d\nSubject: e\n",
		"a\nSent from my iPhone\n\nBegin forwarded message:\n\nx\n",
		"> q\nanswer\n-- \nsig\n",
		"x\r\n---------- Forwarded message ---------\r\n\r\n\r\ny",
		"\xff\xfe>\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := StripReply(in)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		if len(out) > len(in) {
			t.Fatalf("output longer than input: %q -> %q", in, out)
		}
		if fwd := stripReply(in, true); !utf8.ValidString(fwd) || len(fwd) > len(in) {
			t.Fatalf("forward mode: %q -> %q", in, fwd)
		}
	})
}

// checkInvariants holds for every successfully parsed message.
func checkInvariants(t *testing.T, m *Message, lim Limits) {
	t.Helper()
	lim = lim.withDefaults()
	for name, s := range map[string]string{"Subject": m.Subject, "Text": m.Text, "Reply": m.Reply, "HTML": m.HTML, "From.Name": m.From.Name} {
		if !utf8.ValidString(s) {
			t.Errorf("%s is not valid UTF-8: %q", name, s)
		}
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		t.Errorf("Subject has a line break: %q", m.Subject)
	}
	if m.From.Email == "" || m.From.Email != strings.ToLower(m.From.Email) {
		t.Errorf("From.Email = %q", m.From.Email)
	}
	if strings.TrimSpace(m.Text) != "" && strings.TrimSpace(m.Reply) == "" {
		t.Errorf("Reply empty for Text %q", m.Text)
	}
	if len(m.Attachments) > lim.MaxAttachments {
		t.Errorf("%d attachments > %d", len(m.Attachments), lim.MaxAttachments)
	}
	for _, a := range m.Attachments {
		if int64(len(a.Data)) > lim.MaxAttachmentBytes {
			t.Errorf("attachment %q is %d bytes", a.Filename, len(a.Data))
		}
		n := a.Filename
		if n == "" || len(n) > 255 || !utf8.ValidString(n) || strings.ContainsAny(n, `/\`) || n == "." || n == ".." ||
			strings.ContainsFunc(n, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Errorf("unsafe filename %q", n)
		}
		if a.ContentType == "" || a.ContentType != strings.ToLower(a.ContentType) || strings.Contains(a.ContentType, ";") {
			t.Errorf("content type %q", a.ContentType)
		}
		if strings.ContainsAny(a.ContentID, "<>") {
			t.Errorf("content id %q", a.ContentID)
		}
	}
	for _, id := range append(append([]string{m.MessageID}, m.InReplyTo...), m.References...) {
		if strings.ContainsAny(id, "<> \t\r\n") || !utf8.ValidString(id) {
			t.Errorf("bad id %q", id)
		}
	}
}
