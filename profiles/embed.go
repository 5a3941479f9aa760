// Package profiles holds the bitrate ladders shipped with transcoderd, built
// into the binary. They are always offered: the ladder folder on disk adds to
// them and replaces those of the same name; internal/ladder reads and
// validates them.
package profiles

import "embed"

// FS holds every shipped ladder as <name>.yaml at its root.
//
//go:embed *.yaml
var FS embed.FS
