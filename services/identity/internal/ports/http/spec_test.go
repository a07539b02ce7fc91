package httpport

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

const contractPath = "../../../../../api/openapi/identity.yaml"

// wantPermissions is every operation of the contract and the permission its
// route requires (x-permission). Adding, removing or re-permissioning an
// operation is a deliberate change: update this table with the contract.
var wantPermissions = map[string]string{
	"issueToken":            "public",
	"logout":                "authenticated",
	"requestPasswordReset":  "public",
	"completePasswordReset": "public",
	"getJWKS":               "public",
	"getMe":                 "authenticated",

	"listTenants":      "tenants:read",
	"createTenant":     "tenants:manage",
	"getTenant":        "tenants:read",
	"updateTenant":     "tenants:manage",
	"suspendTenant":    "tenants:manage",
	"reactivateTenant": "tenants:manage",

	"listUsers":       "users:read",
	"onboardUser":     "users:manage",
	"getUser":         "users:read",
	"updateUser":      "users:manage",
	"suspendUser":     "users:manage",
	"reactivateUser":  "users:manage",
	"offboardUser":    "users:manage",
	"setUserPassword": "users:manage",
	"grantAccess":     "users:manage",
	"revokeAccess":    "users:manage",

	"listGroups":        "groups:read",
	"createGroup":       "groups:manage",
	"getGroup":          "groups:read",
	"updateGroup":       "groups:manage",
	"deleteGroup":       "groups:manage",
	"listGroupMembers":  "groups:read",
	"addGroupMember":    "groups:manage",
	"removeGroupMember": "groups:manage",

	"listAPITokens":  "tokens:manage",
	"createAPIToken": "tokens:manage",
	"revokeAPIToken": "tokens:manage",
}

// knownPermissions are the values x-permission may take in this contract.
var knownPermissions = []string{
	"public", "authenticated",
	"tenants:read", "tenants:manage",
	"users:read", "users:manage",
	"groups:read", "groups:manage",
	"tokens:manage",
}

// bodiesAllowingUnknownMembers are the operations whose request body may
// carry members the schema does not name: the OAuth token endpoint must
// ignore unrecognised parameters (RFC 6749 §3.2) and decodes its body
// itself.
var bodiesAllowingUnknownMembers = []string{"issueToken"}

func loadContract(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(contractPath)
	if err != nil {
		t.Fatalf("load contract: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("contract is not valid OpenAPI: %v", err)
	}
	return doc
}

func loadEmbedded(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := GetSpec()
	if err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("embedded spec is not valid OpenAPI: %v", err)
	}
	return doc
}

// operation is one operation of a document, with where it lives.
type operation struct {
	method, path string
	op           *openapi3.Operation
}

func (o operation) String() string { return o.method + " " + o.path + " (" + o.op.OperationID + ")" }

func operations(doc *openapi3.T) []operation {
	var out []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, operation{method: method, path: path, op: op})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// TestSpecIsValidAndGenerated checks that the contract is a valid OpenAPI
// document and that the generated code embeds its current version (someone
// edited api/openapi/identity.yaml without `go generate` otherwise).
func TestSpecIsValidAndGenerated(t *testing.T) {
	fromFile := loadContract(t)
	embedded := loadEmbedded(t)
	// oapi-codegen may rewrite operation ids in the embedded copy; the rest
	// must be identical.
	for _, doc := range []*openapi3.T{fromFile, embedded} {
		for _, o := range operations(doc) {
			o.op.OperationID = ""
		}
	}
	a, _ := json.Marshal(fromFile)
	b, _ := json.Marshal(embedded)
	if !bytes.Equal(a, b) {
		t.Fatal("openapi.gen.go is stale: run `go generate ./...` in services/identity")
	}
}

// TestEveryOperationDeclaresPermission checks what the auth middleware
// relies on: every operation has an operationId and an x-permission naming
// a known permission, public operations take no credential (security: [])
// and every other operation inherits the global bearerAuth requirement. It
// checks the embedded spec (what the service mounts) and the contract file
// (whose operation ids are authoritative).
func TestEveryOperationDeclaresPermission(t *testing.T) {
	for name, doc := range map[string]*openapi3.T{"embedded": loadEmbedded(t), "contract": loadContract(t)} {
		t.Run(name, func(t *testing.T) {
			if _, ok := doc.Components.SecuritySchemes["bearerAuth"]; !ok {
				t.Fatal("components.securitySchemes has no bearerAuth")
			}
			scheme := doc.Components.SecuritySchemes["bearerAuth"].Value
			if scheme.Type != "http" || scheme.Scheme != "bearer" {
				t.Errorf("bearerAuth is %s/%s, want http/bearer", scheme.Type, scheme.Scheme)
			}
			if len(doc.Security) != 1 || len(doc.Security[0]) != 1 || doc.Security[0]["bearerAuth"] == nil {
				t.Errorf("global security = %v, want [{bearerAuth: []}]", doc.Security)
			}
			seen := map[string]bool{}
			for _, o := range operations(doc) {
				id := o.op.OperationID
				if id == "" {
					t.Errorf("%s has no operationId", o)
					continue
				}
				key := wantKey(id)
				if seen[key] {
					t.Errorf("%s: operationId used twice", o)
				}
				seen[key] = true
				raw, ok := o.op.Extensions["x-permission"]
				perm, isString := raw.(string)
				if !ok || !isString {
					t.Errorf("%s has no x-permission string", o)
					continue
				}
				if !slices.Contains(knownPermissions, perm) {
					t.Errorf("%s: unknown x-permission %q", o, perm)
				}
				if want, ok := wantPermissions[key]; !ok {
					t.Errorf("%s is not in wantPermissions", o)
				} else if perm != want {
					t.Errorf("%s: x-permission %q, want %q", o, perm, want)
				}
				public := perm == "public"
				switch {
				case public && (o.op.Security == nil || len(*o.op.Security) != 0):
					t.Errorf("%s is public but does not declare security: []", o)
				case !public && o.op.Security != nil:
					t.Errorf("%s is %s but overrides the global security", o, perm)
				}
				if got := hasParam(o.op, "header", "X-Acting-Tenant"); got == public {
					t.Errorf("%s (%s): X-Acting-Tenant parameter present = %v, want %v", o, perm, got, !public)
				}
				if !public && !hasResponse(o.op, 401) {
					t.Errorf("%s takes a credential but documents no 401", o)
				}
				if !public && !hasResponse(o.op, 404) {
					t.Errorf("%s takes X-Acting-Tenant but documents no 404", o)
				}
				if perm != "public" && perm != "authenticated" && !hasResponse(o.op, 403) {
					t.Errorf("%s requires %s but documents no 403", o, perm)
				}
			}
			for id := range wantPermissions {
				if !seen[wantKey(id)] {
					t.Errorf("operation %s is missing", id)
				}
			}
		})
	}
}

// wantKey maps an operation id of either document to its key in
// wantPermissions (the embedded copy may differ in the first letter's case).
func wantKey(id string) string {
	for k := range wantPermissions {
		if strings.EqualFold(k, id) {
			return k
		}
	}
	return id
}

func hasParam(op *openapi3.Operation, in, name string) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == in && strings.EqualFold(p.Value.Name, name) {
			return true
		}
	}
	return false
}

func hasResponse(op *openapi3.Operation, status int) bool {
	return op.Responses.Value(strconv.Itoa(status)) != nil
}

// TestErrorsAreProblems checks that every error answer is RFC 9457
// application/problem+json with the Problem schema, and that 429 and 503
// tell clients when to retry.
func TestErrorsAreProblems(t *testing.T) {
	doc := loadContract(t)
	problem := doc.Components.Schemas["Problem"]
	if problem == nil {
		t.Fatal("components.schemas has no Problem")
	}
	for _, member := range []string{"type", "title", "status", "detail", "instance", "errors", "request_id", "trace_id", "error"} {
		if problem.Value.Properties[member] == nil {
			t.Errorf("Problem has no member %s", member)
		}
	}
	for _, o := range operations(doc) {
		for code, ref := range o.op.Responses.Map() {
			status, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", o, code)
				continue
			}
			if status < 400 {
				continue
			}
			resp := ref.Value
			if len(resp.Content) != 1 || resp.Content["application/problem+json"] == nil {
				t.Errorf("%s %d: content is not only application/problem+json", o, status)
				continue
			}
			if got := resp.Content["application/problem+json"].Schema; got == nil || got.Value != problem.Value {
				t.Errorf("%s %d: schema is not Problem", o, status)
			}
			if (status == 429 || status == 503) && resp.Headers["Retry-After"] == nil {
				t.Errorf("%s %d: no Retry-After header", o, status)
			}
		}
	}
}

// TestRequestBodiesRejectUnknownMembers checks that every request body
// schema is an object with additionalProperties: false, so the request
// validator names unknown fields, except the OAuth token endpoint's.
func TestRequestBodiesRejectUnknownMembers(t *testing.T) {
	doc := loadContract(t)
	for _, o := range operations(doc) {
		if o.op.RequestBody == nil {
			continue
		}
		for mediaType, content := range o.op.RequestBody.Value.Content {
			schema := content.Schema.Value
			if schema == nil || !schema.Type.Is("object") {
				t.Errorf("%s %s: body schema is not an object", o, mediaType)
				continue
			}
			strict := schema.AdditionalProperties.Has != nil && !*schema.AdditionalProperties.Has
			if allowed := slices.Contains(bodiesAllowingUnknownMembers, o.op.OperationID); strict == allowed {
				t.Errorf("%s %s: additionalProperties: false is %v, want %v", o, mediaType, strict, !allowed)
			}
		}
	}
}
