// Package apitest holds the tests' checks against the API's contract, api/openapi.yaml:
// the operations it describes, and a validator of the daemon's real answers (status
// declared for the route, body valid against its schema). Only tests import it, so the
// OpenAPI validator (github.com/pb33f/libopenapi-validator) stays out of the binary.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/transcoderd/transcoderd/api"
)

// Contract is api/openapi.yaml, parsed.
type Contract struct {
	model *v3.Document
	check validator.Validator
	mu    sync.Mutex // the validator is not documented as safe for concurrent use
	paths []path
}

// path is one path of the contract and what matches it.
type path struct {
	name string // "/v1/jobs/{id}"
	re   *regexp.Regexp
	wild bool // the router's wildcard: {path} spans slashes
	ops  map[string]*v3.Operation
}

// Wildcards are the contract's paths that stand for a router wildcard ("/out/*"): their
// one parameter holds slashes, which OpenAPI's path templates cannot say.
var Wildcards = map[string]string{"/out/{path}": "/out/*", "/ui/{path}": "/ui/*"}

var (
	once     sync.Once
	loaded   *Contract
	loadErrs error
)

// Load returns the contract, parsed and checked against the OpenAPI 3.1 schema once
// per test binary.
func Load() (*Contract, error) {
	once.Do(func() { loaded, loadErrs = parse([]byte(api.OpenAPI)) })
	return loaded, loadErrs
}

func parse(spec []byte) (*Contract, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi.yaml: %w", errors.Join(errs...))
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", joinValidation(verrs))
	}
	c := &Contract{model: &m.Model, check: v}
	for name, item := range m.Model.Paths.PathItems.FromOldest() {
		_, wild := Wildcards[name]
		expr := regexp.QuoteMeta(name)
		expr = regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllStringFunc(expr, func(string) string {
			if wild {
				return `.*`
			}
			return `[^/]+`
		})
		p := path{name: name, re: regexp.MustCompile("^" + expr + "$"), wild: wild, ops: map[string]*v3.Operation{}}
		for method, op := range item.GetOperations().FromOldest() {
			p.ops[strings.ToUpper(method)] = op
		}
		c.paths = append(c.paths, p)
	}
	return c, nil
}

// Operations returns every operation of the contract as "METHOD /path", sorted.
func (c *Contract) Operations() []string {
	var out []string
	for _, p := range c.paths {
		for method := range p.ops {
			out = append(out, method+" "+p.name)
		}
	}
	slices.Sort(out)
	return out
}

// Properties returns the property names of the contract's schema name (a component of
// #/components/schemas), sorted; nil when there is no such schema.
func (c *Contract) Properties(name string) []string {
	proxy := c.model.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		return nil
	}
	var out []string
	for k := range proxy.Schema().Properties.KeysFromOldest() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Check validates one answer to req: the route is in the contract (or the answer is
// the router's 404 or 405 with an error body), the status is one the route declares,
// and a body the route describes matches its schema and content type.
func (c *Contract) Check(req *http.Request, status int, header http.Header, body []byte) error {
	where := req.Method + " " + req.URL.Path
	p, op := c.find(req)
	if op == nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s: no such route in openapi.yaml, yet it answered %d", where, status)
		}
		if err := isError(header, body); err != nil {
			return fmt.Errorf("%s: the router's %d: %w", where, status, err)
		}
		return nil
	}
	res := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	if p.wild {
		// The validator cannot match a wildcard path: the status, and an error body.
		resp := op.Responses.Codes.GetOrZero(strconv.Itoa(status))
		if resp == nil {
			return fmt.Errorf("%s (%s): status %d is not declared in openapi.yaml", where, p.name, status)
		}
		if ct, _, _ := mime.ParseMediaType(header.Get("Content-Type")); ct == "application/json" {
			if err := isError(header, body); err != nil {
				return fmt.Errorf("%s (%s): %d: %w", where, p.name, status, err)
			}
		}
		return nil
	}
	c.mu.Lock()
	ok, errs := c.check.ValidateHttpResponse(req, res)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s (%s) answered %d, against openapi.yaml: %w\nbody: %.2000s", where, p.name, status, joinValidation(errs), body)
	}
	return nil
}

// find returns the contract's path and operation for req; op is nil when it has none.
func (c *Contract) find(req *http.Request) (path, *v3.Operation) {
	for _, p := range c.paths {
		if p.re.MatchString(req.URL.EscapedPath()) {
			if op := p.ops[req.Method]; op != nil {
				return p, op
			}
		}
	}
	return path{}, nil
}

// isError checks a JSON error body: {"error": "<message>"} and nothing else.
func isError(header http.Header, body []byte) error {
	if ct, _, _ := mime.ParseMediaType(header.Get("Content-Type")); ct != "application/json" {
		return fmt.Errorf("content type %q, want an application/json error: %.200s", header.Get("Content-Type"), body)
	}
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("error body is not JSON: %w: %.200s", err, body)
	}
	if msg, ok := e["error"].(string); !ok || msg == "" || len(e) != 1 {
		return fmt.Errorf(`error body is not {"error": "<message>"}: %.200s`, body)
	}
	return nil
}

func joinValidation(errs []*verrors.ValidationError) error {
	var out []error
	for _, e := range errs {
		msg := e.Message
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		for _, f := range e.SchemaValidationErrors {
			msg += fmt.Sprintf("\n\t%s: %s", f.FieldPath, f.Reason)
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}
