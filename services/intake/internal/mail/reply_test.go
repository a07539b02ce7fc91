package mail

import "testing"

func TestStripReply(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{
			name: "quoted line removed, inline > kept",
			in:   "Hello,\n\n  indented line\n> is not here\nbut > inside is fine\n",
			want: "Hello,\n\n  indented line\nbut > inside is fine",
		},
		{
			name: "no quote: untouched except trailing space",
			in:   "  Line one\nLine two  \n\n\n",
			want: "  Line one\nLine two",
		},
		{
			name: "gmail",
			in: "Works now, thanks!\n\nOn Tue, 3 Nov 2025 at 09:12, Ada <ada@example.com> wrote:\n\n" +
				"> Please try again.\n>\n> Ada\n",
			want: "Works now, thanks!",
		},
		{
			name: "gmail wrapped attribution",
			in: "Works now.\r\n\r\nOn Tue, 3 Nov 2025 at 09:12, Ada Lovelace from the Analytical Engine Company <\r\n" +
				"ada@example.com> wrote:\r\n\r\n> Please try again.\r\n",
			want: "Works now.",
		},
		{
			name: "gmail attribution with unquoted history (converted HTML)",
			in:   "Still broken.\n\nOn Mon, 3 Nov 2025 at 16:45, Support <support@example.com> wrote:\nHello, please retry.\n",
			want: "Still broken.",
		},
		{
			name: "apple mail",
			in:   "Sure, 3pm works.\n\n> On 3 Nov 2025, at 09:12, Ada wrote:\n> \n> Can we meet?\n",
			want: "Sure, 3pm works.",
		},
		{
			name: "apple mail unquoted attribution",
			in:   "Sure.\n\nOn 3 Nov 2025, at 09:12, Ada wrote:\n\n> Can we meet?\n",
			want: "Sure.",
		},
		{
			name: "outlook original message",
			in: "Please reset my password.\n\n-----Original Message-----\nFrom: Support\nSent: Monday, November 3, 2025 4:12 PM\n" +
				"To: Grace\nSubject: RE: password\n\nWhat is your user name?\n",
			want: "Please reset my password.",
		},
		{
			name: "outlook header block with rule",
			in: "Done, see attached.\n\nRegards\nGrace\n\n________________________________\nFrom: OpsDesk <support@example.com>\n" +
				"Sent: Monday, November 3, 2025 4:12 PM\nTo: Grace Hopper <grace@example.com>\nSubject: [OPS-1] logs\n\nPlease send the logs.\n",
			want: "Done, see attached.\n\nRegards\nGrace",
		},
		{
			name: "outlook header block without rule, bold from html2text",
			in: "OK.\n\n*From:* OpsDesk <support@example.com>\n*Sent:* Monday, November 3, 2025 4:12 PM\n*To:* Grace\n" +
				"*Subject:* logs\n\nPlease send the logs.\n",
			want: "OK.",
		},
		{
			name: "outlook german header block",
			in: "Danke, geht wieder.\n\nVon: OpsDesk <support@example.com>\nGesendet: Montag, 3. November 2025 16:12\n" +
				"An: Jürgen\nBetreff: Drucker\n\nBitte neu starten.\n",
			want: "Danke, geht wieder.",
		},
		{
			name: "outlook french header block",
			in:   "Merci !\n\nDe : OpsDesk <support@example.com>\nEnvoyé : lundi 3 novembre 2025 16:12\nÀ : Marie\nObjet : Imprimante\n\nRedémarrez.\n",
			want: "Merci !",
		},
		{
			name: "german gmail",
			in:   "Funktioniert, danke.\n\nAm Di., 3. Nov. 2025 um 09:12 Uhr schrieb Ada Lovelace <\nada@example.com>:\n\n> Bitte erneut versuchen.\n",
			want: "Funktioniert, danke.",
		},
		{
			name: "german apple/thunderbird",
			in:   "Passt.\n\nAm 03.11.2025 um 09:12 schrieb Ada:\n> Bitte erneut versuchen.\n",
			want: "Passt.",
		},
		{
			name: "french gmail",
			in:   "Ça marche, merci.\n\nLe mar. 3 nov. 2025 à 09:12, Ada <ada@example.com> a écrit :\n\n> Réessayez.\n",
			want: "Ça marche, merci.",
		},
		{
			name: "forward keeps forwarded content",
			in: "Can you look at this?\n\n---------- Forwarded message ---------\nFrom: Vendor <v@example.com>\n" +
				"Date: Mon, 3 Nov 2025 at 17:40\nSubject: Error\nTo: <bob@example.com>\n\nYour invoice failed.\n> quoted in forward\n",
			want: "Can you look at this?\n\n---------- Forwarded message ---------\nFrom: Vendor <v@example.com>\n" +
				"Date: Mon, 3 Nov 2025 at 17:40\nSubject: Error\nTo: <bob@example.com>\n\nYour invoice failed.\n> quoted in forward",
		},
		{
			name: "apple forward after signature",
			in:   "FYI\n\nSent from my iPhone\n\nBegin forwarded message:\n\nFrom: Vendor <v@example.com>\nSubject: Error\n\nYour invoice failed.\n",
			want: "FYI\n\nBegin forwarded message:\n\nFrom: Vendor <v@example.com>\nSubject: Error\n\nYour invoice failed.",
		},
		{
			name: "reply above a quoted forward is still a reply",
			in:   "Fixed.\n\nOn Mon, 3 Nov 2025 at 16:45, Bob <bob@example.com> wrote:\n> ---------- Forwarded message ---------\n> From: Vendor\n",
			want: "Fixed.",
		},
		{
			name: "rfc 3676 signature",
			in:   "The printer is fixed.\n\n-- \nGrace Hopper\nIT, Building 2\n",
			want: "The printer is fixed.",
		},
		{
			name: "double dash without space is text",
			in:   "Part one\n--\nPart two\n",
			want: "Part one\n--\nPart two",
		},
		{
			name: "sent from my iphone",
			in:   "Yes please.\n\nSent from my iPhone\n\n> On 3 Nov 2025, at 09:12, Ada wrote:\n> Shall we?\n",
			want: "Yes please.",
		},
		{
			name: "get outlook for ios",
			in:   "On my way.\n\nGet Outlook for iOS\n________________________________\nFrom: Ada\nSent: today\nTo: me\nSubject: x\n",
			want: "On my way.",
		},
		{
			name: "sentence starting like a mobile signature is kept",
			in:   "Sent from my iPhone, the app crashes every time.\n",
			want: "Sent from my iPhone, the app crashes every time.",
		},
		{
			name: "bottom posted",
			in:   "On Mon, 3 Nov 2025 at 16:45, Support <s@example.com> wrote:\n> Did the restart help?\n> \n\nNo, it did not.\n\n-- \nGrace\n",
			want: "No, it did not.",
		},
		{
			name: "interleaved",
			in:   "> Which OS?\nWindows 11\n\n> Which version?\n4.2.1\n",
			want: "Windows 11\n\n4.2.1",
		},
		{
			name: "only quote returns original",
			in:   "\n> just a quote\n> nothing else\n",
			want: "> just a quote\n> nothing else",
		},
		{
			name: "only signature returns original",
			in:   "-- \nGrace\n",
			want: "-- \nGrace",
		},
		{
			name: "prose mentioning from is not a header block",
			in:   "From: my laptop I cannot reach the VPN.\nTo: reproduce, open the client.\n",
			want: "From: my laptop I cannot reach the VPN.\nTo: reproduce, open the client.",
		},
		{
			name: "prose starting with On is kept",
			in:   "On Monday the VPN failed.\nIt wrote: error 809 in the log.\n",
			want: "On Monday the VPN failed.\nIt wrote: error 809 in the log.",
		},
		{
			name: "empty",
			in:   "",
			want: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StripReply(tc.in); got != tc.want {
				t.Errorf("StripReply =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// Outlook forwards look like its replies; a Fwd: subject keeps the history.
func TestStripReplyOutlookForward(t *testing.T) {
	in := "Please check.\n\n________________________________\nFrom: Vendor <v@example.com>\nSent: Monday, November 3, 2025 4:12 PM\n" +
		"To: Grace\nSubject: Invoice failed\n\nYour invoice failed.\n"
	if got, want := stripReply(in, true), "Please check.\n\n________________________________\nFrom: Vendor <v@example.com>\n"+
		"Sent: Monday, November 3, 2025 4:12 PM\nTo: Grace\nSubject: Invoice failed\n\nYour invoice failed."; got != want {
		t.Errorf("forward =\n%q\nwant\n%q", got, want)
	}
	if got := StripReply(in); got != "Please check." {
		t.Errorf("reply = %q", got)
	}

	raw := "From: grace@example.com\nSubject: FW: Invoice failed\n\n" + in
	m, err := Parse([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Reply != stripReply(in, true) {
		t.Errorf("Parse of FW: mail dropped the forwarded content: %q", m.Reply)
	}
}
