// Package settings holds each tenant's intake settings: the lifecycle
// policy (reopen window, auto-close), the custom-field schema, the mail and
// alert policies. They are an event-sourced aggregate of the INTAKE stream
// (intake.<tenant>.settings), read through a short cache.
package settings

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	intakev1 "github.com/opsdesk/opsdesk/api/events/intake/v1"
	"github.com/opsdesk/opsdesk/libs/es"
	"github.com/opsdesk/opsdesk/services/intake/internal/domain/ticket"
)

// ErrPrecondition: If-Match named another version.
var ErrPrecondition = errors.New("settings: precondition failed")

// Settings are one tenant's settings and their version (0: defaults, never
// set).
type Settings struct {
	intakev1.SettingsUpdated
	Version uint64
}

// Defaults are the settings of a tenant that set none.
func Defaults() Settings {
	return Settings{SettingsUpdated: intakev1.SettingsUpdated{
		ReopenWindowDays: 14, AutoCloseDays: 7, UnknownSenders: intakev1.UnknownSendersCreateRequester,
	}}
}

// Policy is the lifecycle policy of the settings.
func (s Settings) Policy() ticket.Policy {
	day := 24 * time.Hour
	return ticket.Policy{AutoCloseAfter: time.Duration(s.AutoCloseDays) * day, ReopenWindow: time.Duration(s.ReopenWindowDays) * day}
}

// Service reads and writes settings. Reads are cached for TTL per process:
// a change made through another process takes effect here within TTL; a
// change made here at once.
type Service struct {
	store      es.MultiAppender
	ttl        time.Duration
	now        func() time.Time
	mailDomain string

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	s       Settings
	schema  *jsonschema.Schema
	fetched time.Time
}

// New returns the service over the INTAKE context's store. mailDomain is
// OPSDESK_MAIL_DOMAIN, whose addresses are the tenants' slug addresses and
// cannot be claimed as inbound addresses.
func New(store es.MultiAppender, ttl time.Duration, now func() time.Time, mailDomain string) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, ttl: ttl, now: now, mailDomain: strings.ToLower(mailDomain), cache: map[string]cached{}}
}

func key(tenant string) es.Key { return es.Key{Tenant: tenant, ID: intakev1.SettingsID} }

// Get returns the tenant's settings (the defaults when never set).
func (s *Service) Get(ctx context.Context, tenant string) (Settings, error) {
	c, err := s.get(ctx, tenant)
	return c.s, err
}

func (s *Service) get(ctx context.Context, tenant string) (cached, error) {
	s.mu.Lock()
	c, ok := s.cache[tenant]
	s.mu.Unlock()
	if ok && s.now().Sub(c.fetched) < s.ttl {
		return c, nil
	}
	history, _, err := s.store.Load(ctx, key(tenant))
	if err != nil {
		return cached{}, fmt.Errorf("load settings of %s: %w", tenant, err)
	}
	c = cached{s: Defaults(), fetched: s.now()}
	for _, e := range history {
		var v intakev1.SettingsUpdated
		if err := json.Unmarshal(e.Data, &v); err != nil {
			return cached{}, fmt.Errorf("settings of %s, event %s: %w", tenant, e.ID, err)
		}
		c.s.SettingsUpdated = v
	}
	c.s.Version = uint64(len(history))
	if len(c.s.CustomFieldsSchema) > 0 {
		if c.schema, err = compile(c.s.CustomFieldsSchema); err != nil {
			return cached{}, fmt.Errorf("settings of %s: stored custom-field schema: %w", tenant, err)
		}
	}
	s.mu.Lock()
	s.cache[tenant] = c
	s.mu.Unlock()
	return c, nil
}

// Limits of the settings.
const (
	MaxDays             = 365
	MaxInboundAddresses = 20
	MaxSchemaBytes      = 64 << 10
)

// Put replaces the tenant's settings, provided ifMatch (when not nil) is
// their current version. Bad values are a *ticket.ValidationError naming
// each field.
func (s *Service) Put(ctx context.Context, tenant string, ifMatch *uint64, v intakev1.SettingsUpdated, actor, correlation string) (Settings, uint64, error) {
	var errs []ticket.FieldError
	bad := func(f, m string) { errs = append(errs, ticket.FieldError{Field: f, Message: m}) }
	if v.ReopenWindowDays < 0 || v.ReopenWindowDays > MaxDays {
		bad("reopen_window_days", fmt.Sprintf("must be 0 to %d", MaxDays))
	}
	if v.AutoCloseDays < 0 || v.AutoCloseDays > MaxDays {
		bad("auto_close_days", fmt.Sprintf("must be 0 to %d", MaxDays))
	}
	if v.UnknownSenders != intakev1.UnknownSendersCreateRequester && v.UnknownSenders != intakev1.UnknownSendersReject {
		bad("unknown_senders", "must be create_requester or reject")
	}
	if len(v.InboundAddresses) > MaxInboundAddresses {
		bad("inbound_addresses", fmt.Sprintf("must hold at most %d addresses", MaxInboundAddresses))
	}
	seen := map[string]bool{}
	var addrs []string
	for i, a := range v.InboundAddresses {
		a = strings.ToLower(strings.TrimSpace(a))
		switch p, err := mail.ParseAddress(a); {
		case err != nil || p.Address != a || p.Name != "":
			bad(fmt.Sprintf("inbound_addresses[%d]", i), "must be a bare e-mail address")
		case strings.HasSuffix(a, "@"+s.mailDomain):
			bad(fmt.Sprintf("inbound_addresses[%d]", i), "is in "+s.mailDomain+", whose addresses are the tenants' own (<slug>@"+s.mailDomain+")")
		case !seen[a]:
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	v.InboundAddresses = addrs
	if len(v.CustomFieldsSchema) > 0 {
		if len(v.CustomFieldsSchema) > MaxSchemaBytes {
			bad("custom_fields_schema", fmt.Sprintf("must be at most %d bytes", MaxSchemaBytes))
		} else if _, err := compile(v.CustomFieldsSchema); err != nil {
			bad("custom_fields_schema", "is not a JSON Schema: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return Settings{}, 0, &ticket.ValidationError{Fields: errs}
	}
	v.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
	data, err := json.Marshal(v)
	if err != nil {
		return Settings{}, 0, err
	}
	version, seq, err := s.write(ctx, tenant, ifMatch, v, data, actor, correlation)
	if err != nil {
		return Settings{}, 0, err
	}
	s.mu.Lock()
	delete(s.cache, tenant)
	s.mu.Unlock()
	return Settings{SettingsUpdated: v, Version: version}, seq, nil
}

// write appends the settings together with the claims of the addresses
// they add and the releases of those they drop, in one atomic batch;
// an address another tenant holds is a field error.
func (s *Service) write(ctx context.Context, tenant string, ifMatch *uint64, v intakev1.SettingsUpdated, data []byte, actor, correlation string) (uint64, uint64, error) {
	event := func(key es.Key, typ string, body []byte) es.Event {
		return es.Event{ID: ulid.Make().String(), Type: typ, Source: intakev1.Source, Tenant: key.Tenant,
			AggregateID: key.ID, Time: v.UpdatedAt, Actor: actor, CorrelationID: correlation, Data: body}
	}
	for range es.DefaultAttempts {
		history, last, err := s.store.Load(ctx, key(tenant))
		if err != nil {
			return 0, 0, err
		}
		if ifMatch != nil && *ifMatch != uint64(len(history)) {
			return 0, 0, ErrPrecondition
		}
		current := map[string]bool{}
		if len(history) > 0 {
			var prev intakev1.SettingsUpdated
			if err := json.Unmarshal(history[len(history)-1].Data, &prev); err != nil {
				return 0, 0, fmt.Errorf("settings of %s: %w", tenant, err)
			}
			for _, a := range prev.InboundAddresses {
				current[a] = true
			}
		}
		writes := []es.Write{{Key: key(tenant), Expected: last, Events: []es.Event{event(key(tenant), intakev1.TypeSettingsUpdated, data)}}}
		var taken []ticket.FieldError
		wanted := map[string]bool{}
		for i, a := range v.InboundAddresses {
			wanted[a] = true
			holder, claimLast, err := s.claim(ctx, a)
			if err != nil {
				return 0, 0, err
			}
			switch {
			case holder == tenant:
			case holder != "":
				taken = append(taken, ticket.FieldError{Field: fmt.Sprintf("inbound_addresses[%d]", i), Message: "is another tenant's address"})
			default:
				body, _ := json.Marshal(intakev1.AddressClaimed{Address: a, TenantID: tenant})
				writes = append(writes, es.Write{Key: claimKey(a), Expected: claimLast, Events: []es.Event{event(claimKey(a), intakev1.TypeAddressClaimed, body)}})
			}
		}
		if len(taken) > 0 {
			return 0, 0, &ticket.ValidationError{Fields: taken}
		}
		for a := range current {
			if wanted[a] {
				continue
			}
			holder, claimLast, err := s.claim(ctx, a)
			if err != nil {
				return 0, 0, err
			}
			if holder == tenant {
				body, _ := json.Marshal(intakev1.AddressReleased{Address: a, TenantID: tenant})
				writes = append(writes, es.Write{Key: claimKey(a), Expected: claimLast, Events: []es.Event{event(claimKey(a), intakev1.TypeAddressReleased, body)}})
			}
		}
		seqs, err := s.store.AppendAll(ctx, writes)
		if errors.Is(err, es.ErrConcurrency) {
			continue // the settings or a claim moved: look again
		}
		if err != nil {
			return 0, 0, err
		}
		return uint64(len(history)) + 1, slices.Max(seqs), nil
	}
	return 0, 0, fmt.Errorf("settings of %s: %w", tenant, es.ErrConcurrency)
}

// claimKey is the aggregate of an address's claim.
func claimKey(address string) es.Key {
	sum := sha256.Sum256([]byte(strings.ToLower(address)))
	return es.Key{Tenant: intakev1.GlobalTenant, ID: intakev1.AddressClaimPrefix + hex.EncodeToString(sum[:16])}
}

// claim returns the tenant holding address ("" when none) and the claim
// aggregate's last sequence.
func (s *Service) claim(ctx context.Context, address string) (string, uint64, error) {
	history, last, err := s.store.Load(ctx, claimKey(address))
	if err != nil {
		return "", 0, fmt.Errorf("claim of %s: %w", address, err)
	}
	holder := ""
	for _, e := range history {
		var c intakev1.AddressClaimed
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return "", 0, fmt.Errorf("claim of %s, event %s: %w", address, e.ID, err)
		}
		switch e.Type {
		case intakev1.TypeAddressClaimed:
			holder = c.TenantID
		case intakev1.TypeAddressReleased:
			holder = ""
		}
	}
	return holder, last, nil
}

// AddressOwner returns the tenant whose inbound address address is.
func (s *Service) AddressOwner(ctx context.Context, address string) (string, bool, error) {
	holder, _, err := s.claim(ctx, address)
	return holder, holder != "", err
}

// ValidateCustomFields checks a ticket's custom fields against the tenant's
// schema: a *ticket.ValidationError naming each bad field
// (custom_fields.<path>), or nil. No schema accepts any object.
func (s *Service) ValidateCustomFields(ctx context.Context, tenant string, raw json.RawMessage) error {
	c, err := s.get(ctx, tenant)
	if err != nil {
		return err
	}
	if c.schema == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = json.RawMessage(`{}`) // required custom fields must be given
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &ticket.ValidationError{Fields: []ticket.FieldError{{Field: "custom_fields", Message: "must be a JSON object"}}}
	}
	err = c.schema.Validate(doc)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var fields []ticket.FieldError
	for _, leaf := range leaves(ve) {
		field := "custom_fields"
		for _, tok := range leaf.InstanceLocation {
			field += "." + tok
		}
		if r, ok := leaf.ErrorKind.(*kind.Required); ok { // name each missing field itself
			for _, m := range r.Missing {
				fields = append(fields, ticket.FieldError{Field: field + "." + m, Message: "is required"})
			}
			continue
		}
		fields = append(fields, ticket.FieldError{Field: field, Message: leaf.ErrorKind.LocalizedString(printer)})
	}
	return &ticket.ValidationError{Fields: fields}
}

var printer = message.NewPrinter(language.English)

// leaves returns the innermost causes of a validation error: what is wrong,
// rather than "does not validate".
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// compile compiles a tenant's custom-field schema. Remote references are not
// loaded: a tenant's schema must not make the service fetch URLs.
func compile(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, errors.New("must be a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	const url = "mem://tenant/custom-fields.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("references to %s are not loaded", url)
}
