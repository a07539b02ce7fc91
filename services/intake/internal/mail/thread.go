package mail

import "strings"

// TicketToken finds a bracketed ticket token such as "[OPS-1042]" in a
// subject and returns it as prefix+digits ("OPS-1042"). The prefix matches
// case-insensitively; spaces inside the brackets are tolerated. Unbracketed
// mentions do not count, so quoting a ticket number in prose does not thread.
func TicketToken(subject, prefix string) string {
	if prefix == "" {
		return ""
	}
	for i := 0; i < len(subject); i++ {
		if subject[i] != '[' {
			continue
		}
		j := skipSpaces(subject, i+1)
		if len(subject)-j < len(prefix) || !strings.EqualFold(subject[j:j+len(prefix)], prefix) {
			continue
		}
		j += len(prefix)
		k := j
		for k < len(subject) && subject[k] >= '0' && subject[k] <= '9' {
			k++
		}
		// Cap length so callers can parse the number into an int64.
		if k == j || k-j > 18 {
			continue
		}
		if e := skipSpaces(subject, k); e < len(subject) && subject[e] == ']' {
			return prefix + subject[j:k]
		}
	}
	return ""
}

func skipSpaces(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// ThreadIDs returns the Message-IDs this message refers to, most specific
// first: In-Reply-To, then References from last (the direct parent) to first.
func (m *Message) ThreadIDs() []string {
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range m.InReplyTo {
		add(id)
	}
	for i := len(m.References) - 1; i >= 0; i-- {
		add(m.References[i])
	}
	return ids
}

// IsLoop reports whether the message must neither open nor update a ticket,
// with a short reason: machine-generated mail (auto-replies, bulk, bounces)
// or our own outbound mail coming back, recognised by its own Message-ID
// being under ownDomain. Our ids in In-Reply-To/References are normal: that
// is how a customer's reply to our notification looks.
func (m *Message) IsLoop(ownDomain string) (bool, string) {
	if m.Auto != AutoNone {
		return true, string(m.Auto)
	}
	ownDomain = strings.TrimPrefix(strings.TrimSpace(ownDomain), "@")
	if ownDomain != "" && hasSuffixFold(m.MessageID, "@"+ownDomain) {
		return true, "own_message_id"
	}
	return false, ""
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
