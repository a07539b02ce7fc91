package ticket

import ticketv1 "github.com/opsdesk/opsdesk/api/events/ticket/v1"

// priorityMatrix is the ITIL impact x urgency matrix:
//
//	impact \ urgency   high  medium  low
//	high               P1    P2      P3
//	medium             P2    P3      P4
//	low                P3    P4      P5
var priorityMatrix = map[[2]string]string{
	{ticketv1.LevelHigh, ticketv1.LevelHigh}:     ticketv1.PriorityP1,
	{ticketv1.LevelHigh, ticketv1.LevelMedium}:   ticketv1.PriorityP2,
	{ticketv1.LevelHigh, ticketv1.LevelLow}:      ticketv1.PriorityP3,
	{ticketv1.LevelMedium, ticketv1.LevelHigh}:   ticketv1.PriorityP2,
	{ticketv1.LevelMedium, ticketv1.LevelMedium}: ticketv1.PriorityP3,
	{ticketv1.LevelMedium, ticketv1.LevelLow}:    ticketv1.PriorityP4,
	{ticketv1.LevelLow, ticketv1.LevelHigh}:      ticketv1.PriorityP3,
	{ticketv1.LevelLow, ticketv1.LevelMedium}:    ticketv1.PriorityP4,
	{ticketv1.LevelLow, ticketv1.LevelLow}:       ticketv1.PriorityP5,
}

// Priority derives the priority (P1 critical .. P5 planning) from impact and
// urgency; ok is false when either is not a known level.
func Priority(impact, urgency string) (p string, ok bool) {
	p, ok = priorityMatrix[[2]string{impact, urgency}]
	return p, ok
}
