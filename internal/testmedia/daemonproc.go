package testmedia

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// The helpers below serve tests and scripts that run the daemon as a process of its
// own (scripts/bench, scripts/overhead, deploy's image tests).

// FreeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreeTCPPort() (int, error) { return freeTCPPort() }

// WaitHealthy polls api's /healthz until it answers 200, the daemon exits (exited
// says so), ctx ends, or 30 s have passed.
func WaitHealthy(ctx context.Context, api string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(api + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the daemon exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("the daemon did not answer /healthz in 30s")
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a daemon's
// stdout and stderr, read while it runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
