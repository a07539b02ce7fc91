package httpport

// The server interface, models and embedded spec are generated from the
// contract in api/openapi; run `go generate ./...` in services/identity
// after editing it.
//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../../../../api/openapi/identity.yaml
