package ingest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyBytes is how many random bytes a stream key holds: 128 bits.
const KeyBytes = 16

// maxKeyLen bounds what a publisher may present as a key before it is hashed.
const maxKeyLen = 256

// Hash is the SHA-256 of a stream key: what the hub and the store keep. The key itself
// is shown once, when it is made, and kept nowhere.
type Hash [sha256.Size]byte

// String is the hash in hex, for the store.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hash written by Hash.String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("stream key hash %q: not %d bytes of hex", s, len(h))
	}
	copy(h[:], b)
	return h, nil
}

// keyAlphabet is lowercase base32 without padding: 26 characters for 16 bytes, safe in a
// URL path, an SRT stream id and OBS's key field, and easy to read out on a phone.
var keyAlphabet = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKey returns a new random stream key and its hash.
func NewKey() (string, Hash, error) {
	var b [KeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Hash{}, fmt.Errorf("make stream key: %w", err)
	}
	key := keyAlphabet.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// HashKey is the hash of key.
func HashKey(key string) Hash { return sha256.Sum256([]byte(key)) }

// equal compares two hashes in constant time.
func (h Hash) equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// Errors of the parsing of what a publisher asks for; the hub counts refusals by them.
var (
	errNoKey   = errors.New("no stream key")
	errBadApp  = errors.New("unknown application")
	errLongKey = errors.New("stream key too long")
)

// App is the RTMP application publishers name: rtmp://HOST:PORT/live, with the stream key
// as OBS's "Stream Key" (rtmp://HOST:PORT/live/KEY in one URL).
const App = "live"

// rtmpKey returns the stream key of an RTMP publish, from the path gortmplib joins from
// the connect's tcUrl and the publish name: /live/KEY, perhaps followed by a query
// (?a=b, which some encoders append to the key) that is not part of the key.
func rtmpKey(path string) (string, error) {
	path = strings.TrimPrefix(path, "/")
	app, key, ok := strings.Cut(path, "/")
	if app != App {
		return "", errBadApp
	}
	key, _, _ = strings.Cut(key, "?")
	key = strings.TrimSuffix(key, "/")
	switch {
	case !ok || key == "":
		return "", errNoKey
	case len(key) > maxKeyLen:
		return "", errLongKey
	case strings.Contains(key, "/"):
		return "", errNoKey
	}
	return key, nil
}
