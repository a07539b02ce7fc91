// Package intakev1 holds version 1 of the intake context's own event
// contracts beyond tickets: the per-tenant intake settings that intake
// appends to the INTAKE stream.
package intakev1

import (
	"embed"
	"encoding/json"
	"time"

	"github.com/opsdesk/opsdesk/api/events"
)

// Stream and subject layout: intake.<tenant>.settings.
const (
	Context = "intake"
	Stream  = "INTAKE"
	Source  = "/services/intake"
	// SettingsID is the aggregate id of a tenant's settings.
	SettingsID = "settings"
)

// ce-types of the intake context.
const (
	TypeSettingsUpdated = "opsdesk.intake.settings_updated.v1"
	TypeAddressClaimed  = "opsdesk.intake.address_claimed.v1"
	TypeAddressReleased = "opsdesk.intake.address_released.v1"
)

// Help-desk addresses are claimed installation-wide, each by one tenant:
// aggregate intake.<GlobalTenant>.<AddressClaimPrefix><hash of the address>.
const (
	GlobalTenant       = "global"
	AddressClaimPrefix = "ad_"
)

// What to do with mail from an address no user of the tenant has.
const (
	UnknownSendersCreateRequester = "create_requester"
	UnknownSendersReject          = "reject"
)

// SettingsUpdated records a tenant's intake settings, whole: the newest
// event is the settings in force.
type SettingsUpdated struct {
	// ReopenWindowDays: a resolved ticket may be reopened this many days
	// after resolution; later, a follow-up ticket is opened instead.
	ReopenWindowDays int `json:"reopen_window_days"`
	// AutoCloseDays: a resolved ticket closes by itself this many days
	// after resolution.
	AutoCloseDays int `json:"auto_close_days"`
	// CustomFieldsSchema is the JSON Schema (draft 2020-12) that every
	// ticket's custom_fields object must satisfy; absent for none.
	CustomFieldsSchema json.RawMessage `json:"custom_fields_schema,omitempty"`
	// UnknownSenders is the policy for mail from an unknown address.
	UnknownSenders string `json:"unknown_senders"`
	// AlertsAutoResolve: when every alert of an incident has resolved, the
	// incident is resolved too.
	AlertsAutoResolve bool `json:"alerts_auto_resolve"`
	// InboundAddresses are the tenant's extra help-desk addresses, beside
	// <slug>@<mail domain>.
	InboundAddresses []string  `json:"inbound_addresses,omitempty"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// AddressClaimed records that a tenant took a help-desk address (one of
// its inbound_addresses): mail to it opens the tenant's tickets.
type AddressClaimed struct {
	Address  string `json:"address"`
	TenantID string `json:"tenant_id"`
}

// AddressReleased records that the tenant gave the address up.
type AddressReleased struct {
	Address  string `json:"address"`
	TenantID string `json:"tenant_id"`
}

// Schemas holds the JSON Schema of every event type of this package.
//
//go:embed *.schema.json
var Schemas embed.FS

// EventTypes lists every event type of the intake context, version 1.
func EventTypes() []events.EventType {
	return []events.EventType{
		{
			Type:   TypeSettingsUpdated,
			New:    func() any { return &SettingsUpdated{} },
			Schema: "intake.settings_updated.v1.schema.json",
			Example: func() any {
				return &SettingsUpdated{
					ReopenWindowDays:   14,
					AutoCloseDays:      7,
					CustomFieldsSchema: json.RawMessage(`{"type":"object","properties":{"cost_center":{"type":"string"}}}`),
					UnknownSenders:     UnknownSendersCreateRequester,
					AlertsAutoResolve:  true,
					InboundAddresses:   []string{"help@acme.example"},
					UpdatedAt:          time.Date(2025, 11, 3, 9, 12, 45, 123456000, time.UTC),
				}
			},
		},
		{
			Type:   TypeAddressClaimed,
			New:    func() any { return &AddressClaimed{} },
			Schema: "intake.address_claimed.v1.schema.json",
			Example: func() any {
				return &AddressClaimed{Address: "help@acme.example", TenantID: "t_01JB8ZQ5M6V8Y0K3W4X2N7R9TA"}
			},
		},
		{
			Type:   TypeAddressReleased,
			New:    func() any { return &AddressReleased{} },
			Schema: "intake.address_released.v1.schema.json",
			Example: func() any {
				return &AddressReleased{Address: "help@acme.example", TenantID: "t_01JB8ZQ5M6V8Y0K3W4X2N7R9TA"}
			},
		},
	}
}
