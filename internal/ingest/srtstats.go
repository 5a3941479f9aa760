package ingest

import "github.com/transcoderd/transcoderd/internal/srt"

// SRTStats is what SRT tells of a publisher's link, counted since it connected: what
// a crew watches to choose its latency (packets lost and retransmitted mean a link
// that needs more; packets dropped, one that had too little: the picture broke).
type SRTStats struct {
	PacketsReceived      uint64  `json:"packets_received"`
	PacketsLost          uint64  `json:"packets_lost"`          // found missing by the hub
	PacketsRetransmitted uint64  `json:"packets_retransmitted"` // sent again by the publisher
	PacketsDropped       uint64  `json:"packets_dropped"`       // too late to be delivered
	RTTMs                float64 `json:"rtt_ms"`                // smoothed round-trip time
}

// srtStats returns the statistics of conn as they are when called.
func srtStats(conn *srt.Conn) func() *SRTStats {
	return func() *SRTStats {
		s := conn.Stats()
		return &SRTStats{PacketsReceived: s.Received, PacketsLost: s.Lost, PacketsRetransmitted: s.Retransmitted,
			PacketsDropped: s.Dropped, RTTMs: float64(s.RTT.Microseconds()) / 1000}
	}
}
