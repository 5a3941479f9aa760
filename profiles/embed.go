// Package profiles holds the bitrate ladders shipped with transcoderd, built
// into the binary. They are the fallback when no ladder directory exists on
// disk; internal/ladder reads and validates them.
package profiles

import "embed"

// FS holds every shipped ladder as <name>.yaml at its root.
//
//go:embed *.yaml
var FS embed.FS
