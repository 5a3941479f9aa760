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
