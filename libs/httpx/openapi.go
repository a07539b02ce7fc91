package httpx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
)

// TitleInvalidRequest is the title of every request validation problem.
const TitleInvalidRequest = "Invalid request"

// ValidateOpenAPI parses and validates an OpenAPI 3 document (YAML or JSON)
// and returns Echo middleware that validates each request matching one of
// its operations: parameters, body (JSON Schema, including enums and
// additionalProperties: false) and content type. A request that fails gets
// a 400 problem titled "Invalid request" listing every failure as a
// FieldError (naming convention on FieldError): malformed JSON is field
// "body" with "is not valid JSON". Requests whose path or method the
// document does not describe pass through untouched.
//
// Validation does not change the request: the body is read once and put
// back byte for byte (schema defaults are not written into it), so the
// handler binds what the client sent. Security schemes in the document are
// not checked here; authentication is separate middleware. The document's
// servers are ignored: its paths are matched as written, because a service
// mounts its routes at exactly those paths.
func ValidateOpenAPI(spec []byte) (echo.MiddlewareFunc, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: router: %w", err)
	}
	opts := &openapi3filter.Options{
		MultiError:          true,
		SkipSettingDefaults: true,
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route, pathParams, err := router.FindRoute(req)
			if err != nil {
				return next(c) // not described by this document
			}
			body, err := readBody(req)
			if err != nil {
				return err
			}
			verr := openapi3filter.ValidateRequest(req.Context(), &openapi3filter.RequestValidationInput{
				Request:    req,
				PathParams: pathParams,
				Route:      route,
				Options:    opts,
			})
			restoreBody(req, body)
			if verr != nil {
				return validationProblem(verr)
			}
			return next(c)
		}
	}, nil
}

// readBody reads the whole body and puts it back. A body over the limit of
// the BodyLimit middleware surfaces here as Echo's 413 error, kept as is.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, NewProblem(http.StatusBadRequest, TitleInvalidRequest, "The request body could not be read.",
			FieldError{Field: "body", Message: "could not be read"})
	}
	restoreBody(req, body)
	return body, nil
}

func restoreBody(req *http.Request, body []byte) {
	if body == nil {
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.NoBody
		}
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// validationProblem converts kin-openapi's errors into one 400 problem.
func validationProblem(err error) *Problem {
	var fields []FieldError
	collectFieldErrors(err, &fields)
	if len(fields) == 0 {
		fields = append(fields, FieldError{Field: "request", Message: "does not match the API description"})
	}
	fields = dedupe(fields)
	detail := "The request does not match the API description: " + fields[0].Field + " " + fields[0].Message
	if n := len(fields) - 1; n > 0 {
		detail += fmt.Sprintf(" (and %d more, see errors)", n)
	}
	return NewProblem(http.StatusBadRequest, TitleInvalidRequest, detail+".", fields...)
}

func collectFieldErrors(err error, out *[]FieldError) {
	// Direct type checks, not errors.As: a RequestError unwraps to the
	// MultiError of its schema errors, which must stay under its field.
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, inner := range e {
			collectFieldErrors(inner, out)
		}
		return
	case *openapi3filter.RequestError:
		requestFieldErrors(e, out)
		return
	case *openapi3filter.SecurityRequirementsError:
		*out = append(*out, FieldError{Field: "header.Authorization", Message: "is missing or invalid"})
		return
	}
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		requestFieldErrors(re, out)
		return
	}
	*out = append(*out, FieldError{Field: "request", Message: "does not match the API description"})
}

func requestFieldErrors(re *openapi3filter.RequestError, out *[]FieldError) {
	switch {
	case re.Parameter != nil:
		parameterFieldErrors(re, out)
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		*out = append(*out, FieldError{Field: "body", Message: "is required"})
	case strings.HasPrefix(re.Reason, "header Content-Type has unexpected value"):
		*out = append(*out, FieldError{Field: "header.Content-Type", Message: "must be " + mediaTypes(re.RequestBody)})
	case re.Reason == "failed to decode request body":
		*out = append(*out, FieldError{Field: "body", Message: decodeMessage(re)})
	case hasSchemaError(re.Err):
		schemaFieldErrors(re.Err, "", out)
	case re.RequestBody != nil:
		*out = append(*out, FieldError{Field: "body", Message: "is invalid"})
	default:
		*out = append(*out, FieldError{Field: "body", Message: "is not allowed on this request"})
	}
}

func parameterFieldErrors(re *openapi3filter.RequestError, out *[]FieldError) {
	field := re.Parameter.In + "." + re.Parameter.Name
	var pe *openapi3filter.ParseError
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		*out = append(*out, FieldError{Field: field, Message: "is required"})
	case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		*out = append(*out, FieldError{Field: field, Message: "must not be empty"})
	case hasSchemaError(re.Err):
		schemaFieldErrors(re.Err, field, out)
	case errors.As(re.Err, &pe) && pe.Reason != "":
		*out = append(*out, FieldError{Field: field, Message: parseMessage(pe.Reason)})
	default:
		*out = append(*out, FieldError{Field: field, Message: "is invalid"})
	}
}

// parseMessage rewords kin-openapi's "an invalid integer" as "must be an
// integer"; other reasons are kept.
func parseMessage(reason string) string {
	if typ, ok := strings.CutPrefix(reason, "an invalid "); ok {
		article := "a "
		if strings.IndexAny(typ, "aeiou") == 0 {
			article = "an "
		}
		return "must be " + article + typ
	}
	return "is invalid: " + reason
}

func decodeMessage(re *openapi3filter.RequestError) string {
	ct := ""
	if re.Input != nil && re.Input.Request != nil {
		ct = re.Input.Request.Header.Get(echo.HeaderContentType)
	}
	if ct == "" || strings.Contains(ct, "json") {
		return "is not valid JSON"
	}
	return "could not be decoded as " + ct
}

func mediaTypes(rb *openapi3.RequestBody) string {
	if rb == nil || len(rb.Content) == 0 {
		return "a supported media type"
	}
	types := make([]string, 0, len(rb.Content))
	for t := range rb.Content {
		types = append(types, t)
	}
	slices.Sort(types)
	return strings.Join(types, " or ")
}

func hasSchemaError(err error) bool {
	var se *openapi3.SchemaError
	return errors.As(err, &se)
}

// schemaFieldErrors lists each schema violation in err under prefix ("" for
// the body, "query.filter" for a parameter).
func schemaFieldErrors(err error, prefix string, out *[]FieldError) {
	var se *openapi3.SchemaError
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, inner := range e {
			schemaFieldErrors(inner, prefix, out)
		}
		return
	case *openapi3.SchemaError:
		se = e
	default:
		if !errors.As(err, &se) {
			return
		}
	}
	path := se.JSONPointer()
	msg := schemaMessage(se)
	if se.SchemaField == "properties" {
		// additionalProperties: false. The error sits on the object; the
		// unknown member is named only in the reason.
		if name, ok := quotedName(se.Reason, "property ", " is unsupported"); ok {
			path = append(path, name)
			msg = "is not a known property"
		}
	}
	*out = append(*out, FieldError{Field: fieldName(prefix, path), Message: msg})
}

func schemaMessage(se *openapi3.SchemaError) string {
	switch se.SchemaField {
	case "required":
		return "is required"
	case "format":
		// The reason spells out the format's regular expression.
		if se.Schema != nil && se.Schema.Format != "" {
			if ex, ok := formatExamples[se.Schema.Format]; ok {
				return "must be a valid " + se.Schema.Format + " (" + ex + ")"
			}
			return "must be a valid " + se.Schema.Format
		}
	}
	// Reasons never include the offending value (kin-openapi's rule), so
	// they are safe to return.
	if se.Reason != "" {
		return se.Reason
	}
	if se.SchemaField != "" {
		return "does not match the schema's " + se.SchemaField
	}
	return "does not match the schema"
}

var formatExamples = map[string]string{
	"date-time": "RFC 3339, such as 2026-01-31T09:30:00Z",
	"date":      "RFC 3339 full-date, such as 2026-01-31",
}

// quotedName extracts name from reasons such as `property "name" is unsupported`.
func quotedName(reason, before, after string) (string, bool) {
	rest, ok := strings.CutPrefix(reason, before)
	if !ok {
		return "", false
	}
	quoted, ok := strings.CutSuffix(rest, after)
	if !ok {
		return "", false
	}
	name, err := strconv.Unquote(quoted)
	return name, err == nil
}

func fieldName(prefix string, path []string) string {
	segs := make([]string, 0, len(path)+1)
	if prefix != "" {
		segs = append(segs, prefix)
	}
	for _, p := range path {
		segs = append(segs, fieldSegment(p))
	}
	if len(segs) == 0 {
		return "body"
	}
	return strings.Join(segs, ".")
}

// fieldSegment quotes a member name that would make the dotted field name
// ambiguous or unreadable: empty, containing a dot or a quote, or not
// printable.
func fieldSegment(name string) string {
	if name == "" || strings.ContainsAny(name, ".\"") || strconv.Quote(name) != `"`+name+`"` {
		return strconv.Quote(name)
	}
	return name
}

func dedupe(fields []FieldError) []FieldError {
	seen := make(map[FieldError]bool, len(fields))
	out := fields[:0]
	for _, f := range fields {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
