package coord_test

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/coord/coordtest"
)

// BenchmarkCAS measures one compare-and-set round trip (Update at the latest revision)
// on each backend: 1000 sequential updates of one key, reported as p50 and p95.
//
//	go test -run '^$' -bench CAS -benchtime 1x ./internal/coord
func BenchmarkCAS(b *testing.B) {
	var cluster *coordtest.Cluster
	for _, be := range []struct {
		name string
		open func(t testing.TB) coord.Store
	}{
		{"bolt", boltBackend().open},
		{"nats1", natsSingle().open},
		{"nats3", nil},
	} {
		b.Run(be.name, func(b *testing.B) {
			var s coord.Store
			if be.open != nil {
				s = be.open(b)
			} else {
				cluster = coordtest.StartCluster(b, 3)
				b.ReportMetric(cluster.Ready.Seconds(), "cluster-ready-s")
				s = cluster.Store(b, 3)
			}
			for range b.N {
				p50, p95 := casLatency(b, s)
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(p95.Microseconds()), "p95-µs")
			}
		})
	}
}

func casLatency(b *testing.B, s coord.Store) (p50, p95 time.Duration) {
	ctx := context.Background()
	bk, err := s.Bucket(ctx, coord.BucketConfig{Name: "bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		b.Fatal(err)
	}
	rev, err := bk.Create(ctx, "job", []byte(`{"box":"a","epoch":1}`))
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 1000)
	for i := range lat {
		start := time.Now()
		if rev, err = bk.Update(ctx, "job", []byte(`{"box":"a","epoch":1}`), rev); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*95/100]
}

// BenchmarkEmbeddedServerMemory reports how much this process's resident memory grows
// when one embedded server (JetStream, no client port) runs the fleet's buckets with
// one heartbeat every 100 ms for 3 s. Run it alone, in a fresh process:
//
//	go test -run '^$' -bench EmbeddedServerMemory -benchtime 1x ./internal/coord
func BenchmarkEmbeddedServerMemory(b *testing.B) {
	for range b.N {
		rss0, anon0 := procStatus(b)
		s, err := coord.StartServer(coord.ServerConfig{Name: "solo", StoreDir: b.TempDir(), DontListen: true}, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		nc, err := nats.Connect("", nats.InProcessServer(s))
		if err != nil {
			b.Fatal(err)
		}
		js, _ := coord.NewJetStream(nc, 1)
		ctx := context.Background()
		var nodes coord.Bucket
		for _, cfg := range []coord.BucketConfig{
			{Name: "tx_jobs"}, {Name: "tx_assign"}, {Name: "tx_status"},
			{Name: "tx_nodes", TTL: 10 * time.Second}, {Name: "tx_leader", TTL: 10 * time.Second},
		} {
			bk, err := js.Bucket(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if cfg.Name == "tx_nodes" {
				nodes = bk
			}
		}
		rev, _ := nodes.Create(ctx, "box-a", []byte(`{"cpu_budget_units":8}`))
		for range 30 {
			time.Sleep(100 * time.Millisecond)
			if rev, err = nodes.Update(ctx, "box-a", []byte(`{"cpu_budget_units":8}`), rev); err != nil {
				b.Fatal(err)
			}
		}
		rss1, anon1 := procStatus(b)
		b.ReportMetric(float64(rss1-rss0)/1024, "VmRSS-delta-MiB")
		b.ReportMetric(float64(anon1-anon0)/1024, "RssAnon-delta-MiB")
		b.ReportMetric(float64(rss1)/1024, "VmRSS-MiB")
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// procStatus returns VmRSS and RssAnon in KiB.
func procStatus(b *testing.B) (rss, anon int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = n
		case "RssAnon:":
			anon = n
		}
	}
	return rss, anon
}
