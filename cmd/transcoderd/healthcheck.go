package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/transcoderd/transcoderd/internal/daemon"
	"github.com/transcoderd/transcoderd/internal/healthcheck"
)

// checkHealth asks the daemon that c describes (its --listen and --tls-cert) whether
// it is healthy, for a container's HEALTHCHECK, and returns the exit code: 0 when it
// is, 1 when not (what Docker expects).
func checkHealth(c daemon.Config) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := healthcheck.Check(ctx, c.Listen, c.TLSCert)
	if err != nil {
		fmt.Fprintln(os.Stderr, "transcoderd:", err)
		return 1
	}
	fmt.Println("transcoderd", v, "is healthy")
	return 0
}
