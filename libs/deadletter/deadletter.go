// Package deadletter moves messages that keep failing out of the way, into
// the DLQ stream, with the error that stopped them, so they never block the
// consumer behind them. Dead letters can be listed and replayed.
//
// Layout: stream DLQ, subjects dlq.<consumer>.<original-subject>. Each dead
// letter keeps the original body and headers and adds the Opsdesk-Dlq-*
// headers below.
package deadletter

// Stream and headers of dead letters.
const (
	Stream        = "DLQ"
	SubjectPrefix = "dlq"

	HeaderError    = "Opsdesk-Dlq-Error"    // why the message failed
	HeaderConsumer = "Opsdesk-Dlq-Consumer" // the projection or reaction that gave up
	HeaderStream   = "Opsdesk-Dlq-Stream"   // original stream
	HeaderSubject  = "Opsdesk-Dlq-Subject"  // original subject
	HeaderSequence = "Opsdesk-Dlq-Sequence" // original stream sequence
	HeaderAttempts = "Opsdesk-Dlq-Attempts" // deliveries before giving up
	HeaderTime     = "Opsdesk-Dlq-Time"     // when it was dead-lettered (RFC 3339)
)
