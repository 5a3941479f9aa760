// Package coordtest is for tests only: it starts three embedded NATS servers on
// 127.0.0.1 that form one JetStream cluster (the fleet's three core boxes in one
// process), so coordination code runs against replicated R3 buckets, quorum loss and
// leader failover without another machine.
package coordtest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// Cluster is n servers that route to each other; client ports are random.
type Cluster struct {
	Servers []*server.Server
	URLs    []string
	// Ready is how long the cluster took from the first server's start until an R3
	// bucket could be created.
	Ready time.Duration
}

// StartCluster starts n servers (StoreDir under t.TempDir) and waits, up to 30 s, until
// an R3 bucket can be created. The servers stop when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, false)
}

// StartHidden is StartCluster with servers that do not tell their clients of the
// others: a client behind a proxy stays behind it when the proxy cuts it off.
func StartHidden(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, true)
}

func start(t testing.TB, n int, noAdvertise bool) *Cluster {
	t.Helper()
	ports := freePorts(t, n)
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	dir := t.TempDir()
	c := &Cluster{}
	start := time.Now()
	for i := range n {
		s, err := coord.StartServer(coord.ServerConfig{
			Name: fmt.Sprintf("box-%c", 'a'+i), StoreDir: filepath.Join(dir, fmt.Sprint(i)),
			Host: "127.0.0.1", Port: -1,
			ClusterName: "transcoderd", ClusterHost: "127.0.0.1", ClusterPort: ports[i], Routes: routes,
			NoAdvertise: noAdvertise,
		}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		c.Servers = append(c.Servers, s)
		c.URLs = append(c.URLs, s.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Store(t, min(n, 3)).Bucket(ctx, coord.BucketConfig{Name: "coordtest_ready"}); err != nil {
		t.Fatalf("cluster of %d not ready: %v", n, err)
	}
	c.Ready = time.Since(start)
	return c
}

// Connect returns a client of every server that reconnects for ever (closed when the
// test ends).
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(strings.Join(c.URLs, ","),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect %v: %v", c.URLs, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Store connects and returns a JetStream store with buckets of replicas copies.
func (c *Cluster) Store(t testing.TB, replicas int) *coord.JetStream {
	t.Helper()
	js, err := coord.NewJetStream(c.Connect(t), replicas)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Kill stops server i at once, as a box that dies.
func (c *Cluster) Kill(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// StreamLeader returns the index of the server that leads the bucket's stream, or -1.
func (c *Cluster) StreamLeader(bucket string) int {
	for i, s := range c.Servers {
		if s.Running() && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, "KV_"+bucket) {
			return i
		}
	}
	return -1
}

// freePorts asks the kernel for n free ports on 127.0.0.1 (the route listeners must be
// known before the servers start, since each lists all the others).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
