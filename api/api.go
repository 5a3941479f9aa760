// Package api holds the contract of transcoderd's HTTP interface: openapi.yaml, the
// OpenAPI 3.1 description of every route, its answers and their schemas. It is embedded
// so that the daemon serves it (GET /v1/openapi.yaml), and the tests of internal/api and
// internal/daemon hold the router and the daemon's real answers to it.
package api

import _ "embed"

// OpenAPI is openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI string
