package srt

import (
	"net/netip"
	"time"
)

// Inject handles data as if it had come from from.
func (l *Listener) Inject(data []byte, from netip.AddrPort) { l.packet(data, from, nil, time.Now()) }

// Cookie is the SYN cookie the listener gives from.
func (l *Listener) Cookie(from netip.AddrPort) uint32 { return l.cookie.Get(from.String()) }

// ID is the connection's socket id.
func (c *Conn) ID() uint32 { return c.id }

// InjectAt handles data as if it had come from from at now.
func (l *Listener) InjectAt(data []byte, from netip.AddrPort, now time.Time) {
	l.packet(data, from, nil, now)
}

// Drift is how far the connection moved its time base after the caller's clock, in µs.
func (c *Conn) Drift() int64 {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.drift
}
