package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// env reads typed environment variables, collecting every problem so that start-up
// reports them all at once, each naming its variable.
type env struct {
	lookup func(string) (string, bool)
	errs   []error
	// seen records each variable read with its effective value, for the start-up
	// log line. No setting is a secret today; one that becomes one must be masked
	// before it is logged.
	seen []setting
}

type setting struct{ Name, Value string }

func newEnv(lookup func(string) (string, bool)) *env {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &env{lookup: lookup}
}

func (e *env) raw(name, def string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		e.seen = append(e.seen, setting{name, def})
		return def, false
	}
	e.seen = append(e.seen, setting{name, v})
	return v, true
}

func (e *env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

func (e *env) String(name, def string) string {
	v, _ := e.raw(name, def)
	return v
}

func (e *env) Int(name string, def, lo, hi int) int {
	v, set := e.raw(name, strconv.Itoa(def))
	if !set {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.fail(name, "%q is not an integer in [%d, %d]", v, lo, hi)
		return def
	}
	return n
}

func (e *env) Int64(name string, def, lo, hi int64) int64 {
	v, set := e.raw(name, strconv.FormatInt(def, 10))
	if !set {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		e.fail(name, "%q is not an integer in [%d, %d]", v, lo, hi)
		return def
	}
	return n
}

func (e *env) Float(name string, def, lo, hi float64) float64 {
	v, set := e.raw(name, strconv.FormatFloat(def, 'g', -1, 64))
	if !set {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi {
		e.fail(name, "%q is not a number in [%g, %g]", v, lo, hi)
		return def
	}
	return f
}

func (e *env) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, set := e.raw(name, def.String())
	if !set {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		e.fail(name, "%q is not a duration in [%s, %s] (e.g. 500ms, 10s, 1m)", v, lo, hi)
		return def
	}
	return d
}

func (e *env) Enum(name, def string, allowed ...string) string {
	v, _ := e.raw(name, def)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	e.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}
