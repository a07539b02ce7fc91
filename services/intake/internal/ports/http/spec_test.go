package httpport

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestSpecIsValidAndGenerated checks that the contract is a valid OpenAPI
// document and that the generated code embeds its current version (someone
// edited api/openapi/intake.yaml without `go generate` otherwise).
func TestSpecIsValidAndGenerated(t *testing.T) {
	loader := openapi3.NewLoader()
	fromFile, err := loader.LoadFromFile("../../../../../api/openapi/intake.yaml")
	if err != nil {
		t.Fatalf("load contract: %v", err)
	}
	if err := fromFile.Validate(context.Background()); err != nil {
		t.Fatalf("contract is not valid OpenAPI: %v", err)
	}
	embedded, err := GetSpec()
	if err != nil {
		t.Fatalf("embedded spec: %v", err)
	}
	// oapi-codegen capitalises operation ids in the embedded copy; the rest
	// must be identical.
	for _, doc := range []*openapi3.T{fromFile, embedded} {
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				op.OperationID = ""
			}
		}
	}
	a, _ := json.Marshal(fromFile)
	b, _ := json.Marshal(embedded)
	if !bytes.Equal(a, b) {
		t.Fatal("openapi.gen.go is stale: run `go generate ./...` in services/intake")
	}
}
