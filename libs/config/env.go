package config

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/caarlos0/env/v11"
)

// parseEnv sets the fields of target (a pointer to a struct with env tags)
// from the variables getenv returns, and names each variable it could not
// parse: caarlos0/env's own errors name the Go field, not the variable.
func parseEnv(target any, prefix string, getenv func(string) string) []error {
	params, err := env.GetFieldParamsWithOptions(target, env.Options{Prefix: prefix})
	if err != nil {
		return []error{fmt.Errorf("config: %w", err)}
	}
	vars := make(map[string]string, len(params))
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			vars[p.Key] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	if err := env.ParseWithOptions(target, env.Options{Prefix: prefix, Environment: vars}); err == nil {
		return nil
	}
	// Find the culprits one variable at a time, on a scratch copy so the
	// failed attempts cannot leave half-set values behind.
	var errs []error
	for _, p := range params {
		v, ok := vars[p.Key]
		if !ok {
			continue
		}
		scratch := reflect.New(reflect.TypeOf(target).Elem()).Interface()
		err := env.ParseWithOptions(scratch, env.Options{Prefix: prefix, Environment: map[string]string{p.Key: v}})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s", p.Key, envCause(err)))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("environment: could not be parsed"))
	}
	return errs
}

// envCause digs the parse failure out of caarlos0/env's wrapping.
func envCause(err error) string {
	var pe env.ParseError
	if errors.As(err, &pe) && pe.Err != nil {
		return "cannot parse: " + pe.Err.Error()
	}
	return err.Error()
}

// EnvVars lists the environment variables of the shared configuration, in
// declaration order.
func EnvVars() []string {
	params, err := env.GetFieldParams(&Config{})
	if err != nil {
		panic(err) // the struct tags are ours; a bad one is a programming error
	}
	out := make([]string, len(params))
	for i, p := range params {
		out[i] = p.Key
	}
	return out
}
