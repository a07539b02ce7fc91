package mail

import (
	"regexp"
	"strings"
)

// Reply-history markers of the common clients. All are matched against a
// single trimmed line, except attributions, which Gmail wraps (see
// attributionLen).
var (
	// Gmail/Apple/Thunderbird attribution lines: "On <date>, <who> wrote:".
	attributionRe = []*regexp.Regexp{
		// Plain .+ rather than counted repeats: those blow up the regexp
		// program; attributionLen caps the length instead.
		regexp.MustCompile(`(?i)^on\s.+\swrote\s?:$`),
		regexp.MustCompile(`(?i)^am\s.+\sschrieb\b.*:$`),
		regexp.MustCompile(`(?i)^.+\sschrieb am\s.+:$`),
		regexp.MustCompile(`(?i)^le\s.+\sa\s+écrit\s?:$`),
		regexp.MustCompile(`(?i)^el\s.+\sescribió\s?:$`),
		regexp.MustCompile(`(?i)^op\s.+\sschreef\b.*:$`),
	}
	// Outlook/Thunderbird "-----Original Message-----" and translations.
	originalRe = regexp.MustCompile(`(?i)^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|oorspronkelijk bericht|messaggio originale)\s*-{2,}$`)
	// Forward markers: Gmail, Thunderbird, Apple Mail and translations.
	forwardRe = regexp.MustCompile(`(?i)^(-{2,}\s*(forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|doorgestuurd bericht)\s*-{2,}|begin forwarded message:|anfang der weitergeleiteten nachricht:|début du message réexpédié :?)$`)
	// Outlook header block lines; "*From:*" is how html2text renders bold.
	hdrFromRe    = regexp.MustCompile(`(?i)^\*?(from|von|de|van|da)\s?:\*?\s*\S`)
	hdrSentRe    = regexp.MustCompile(`(?i)^\*?(sent|date|gesendet|datum|envoyé|verzonden|enviado|inviato)\s?:`)
	hdrSubjectRe = regexp.MustCompile(`(?i)^\*?(to|subject|an|betreff|à|objet|aan|onderwerp|para|asunto|a|oggetto)\s?:`)
	// Mobile/app signatures. Whole-line matches only, so a sentence that
	// starts "Sent from my iPhone, the app..." is kept.
	mobileSigRe = regexp.MustCompile(`(?i)^(sent from my [\w .'-]{2,40}|sent from (mail|outlook) for [\w ]{2,20}|get outlook for (ios|android)|sent from yahoo mail (for|on) \w+|von meinem [\w .-]{2,30} gesendet|envoyé de mon [\w .-]{2,30}|enviado desde mi [\w .-]{2,30})\.?$`)
)

// StripReply removes quoted history and signatures from a plain-text reply
// so that only what the sender just wrote remains. Forwarded content is
// kept, since a forward to the help desk is the request. Text without
// quotes is returned with trailing whitespace trimmed; if stripping would
// leave nothing, the whole text is returned trimmed. Invalid UTF-8 is dropped.
func StripReply(text string) string { return stripReply(text, false) }

// stripReply with forward set (the subject says Fwd:) treats Outlook-style
// history blocks as the start of forwarded content too, since Outlook
// forwards look exactly like its replies.
func stripReply(text string, forward bool) string {
	text = strings.ToValidUTF8(text, "")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	lines := strings.Split(text, "\n")

	var out, tail []string // tail: forwarded content, kept verbatim
	removed := false
scan:
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case forwardRe.MatchString(l):
			// Everything from here is the forwarded request: keep verbatim,
			// including its own header block and quotes.
			tail = lines[i:]
			break scan
		case isHistoryStart(lines, i):
			if forward {
				tail = lines[i:]
				break scan
			}
			// Outlook-style history: always top-posted, so cut to the end.
			removed = true
			break scan
		case attributionLen(lines, i) > 0:
			n := attributionLen(lines, i)
			removed = true
			if j := nextNonBlank(lines, i+n); j < len(lines) && isQuoted(lines[j]) {
				// Drop the attribution; its quote block goes below and any
				// bottom-posted text after it stays.
				i += n - 1
				continue
			}
			// Unquoted history (e.g. converted HTML): top-posted, cut.
			break scan
		case lines[i] == "-- " || len(l) < 80 && mobileSigRe.MatchString(l):
			// Signature runs to the end, or to a forwarded message below it.
			removed = true
			for i+1 < len(lines) && !forwardRe.MatchString(strings.TrimSpace(lines[i+1])) &&
				!(forward && isHistoryStart(lines, i+1)) {
				i++
			}
		case isQuoted(lines[i]):
			removed = true
		default:
			out = append(out, lines[i])
		}
	}
	if !removed {
		return strings.TrimRight(text, " \t\n")
	}
	res := strings.TrimLeft(joinCollapsed(out), "\n")
	if tail != nil {
		res = strings.TrimRight(res, " \t\n")
		if res != "" {
			res += "\n\n"
		}
		res += strings.Join(tail, "\n")
	}
	res = strings.TrimRight(res, " \t\n")
	if strings.TrimSpace(res) == "" {
		return strings.TrimSpace(text)
	}
	return res
}

func isHistoryStart(lines []string, i int) bool {
	l := strings.TrimSpace(lines[i])
	return originalRe.MatchString(l) || isUnderscoreRule(l) && headerBlockAt(lines, nextNonBlank(lines, i+1)) || headerBlockAt(lines, i)
}

func isQuoted(l string) bool { return strings.HasPrefix(strings.TrimLeft(l, " \t"), ">") }

func isUnderscoreRule(l string) bool {
	return len(l) >= 10 && strings.Trim(l, "_") == ""
}

func nextNonBlank(lines []string, i int) int {
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	return i
}

// headerBlockAt reports an Outlook "From:/Sent:/To:/Subject:" block starting
// at line i: a From line followed closely by a Sent/Date line and a
// To/Subject line. Requiring all three keeps prose like "From: my laptop"
// from matching.
func headerBlockAt(lines []string, i int) bool {
	if i >= len(lines) || !hdrFromRe.MatchString(strings.TrimSpace(lines[i])) {
		return false
	}
	sent, subj := false, false
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		l := strings.TrimSpace(lines[j])
		sent = sent || hdrSentRe.MatchString(l)
		subj = subj || hdrSubjectRe.MatchString(l)
	}
	return sent && subj
}

// attributionLen returns how many lines (1-3) starting at i form an
// attribution line such as "On Tue, 3 Nov 2025 at 09:12, Ada <ada@x> wrote:",
// or 0. Gmail wraps long ones; a date always has a digit.
func attributionLen(lines []string, i int) int {
	joined := ""
	for n := 1; n <= 3 && i+n <= len(lines); n++ {
		l := strings.TrimSpace(lines[i+n-1])
		if l == "" || isQuoted(l) {
			return 0
		}
		if n == 1 {
			joined = l
		} else {
			joined += " " + l
		}
		if len(joined) > 400 {
			return 0
		}
		if !strings.HasSuffix(joined, ":") || !strings.ContainsAny(joined, "0123456789") {
			continue
		}
		for _, re := range attributionRe {
			if re.MatchString(joined) {
				return n
			}
		}
	}
	return 0
}

// joinCollapsed joins lines, squeezing runs of blank lines left behind by
// removed quotes into one.
func joinCollapsed(lines []string) string {
	var b strings.Builder
	blank := false
	for i, l := range lines {
		isBlank := strings.TrimSpace(l) == ""
		if isBlank && blank {
			continue
		}
		if i > 0 && b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
		blank = isBlank
	}
	return b.String()
}
