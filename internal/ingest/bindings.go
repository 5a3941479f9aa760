package ingest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Binding binds a stream key to the push job that the key's first publish creates,
// for setups where jobs are not created by hand (nginx-rtmp's way: the encoder's key
// is all there is). The key itself is not kept, only its hash.
type Binding struct {
	Hash          Hash
	ID            string
	Ladder        string
	Protocols     []Protocol // what may publish; empty for every protocol
	SRTPassphrase string
	Line          int // of the key in the file
}

// Source is the job source of b's job: push, push:rtmp or push:srt.
func (b *Binding) Source() string {
	if len(b.Protocols) == 1 {
		return "push:" + string(b.Protocols[0])
	}
	return "push"
}

// Allows reports whether p may publish b's job.
func (b *Binding) Allows(p Protocol) bool {
	return len(b.Protocols) == 0 || slices.Contains(b.Protocols, p)
}

// Bindings is a bindings file: its stream keys and the jobs they create.
type Bindings struct {
	File string
	List []Binding
}

// Find returns the binding of the key whose hash is h; nil when none. Every binding's
// hash is compared, in constant time, whatever matches.
func (b *Bindings) Find(h Hash) *Binding {
	var found *Binding
	for i := range b.List {
		if b.List[i].Hash.equal(h) {
			found = &b.List[i]
		}
	}
	return found
}

// MinBoundKeyLen is the shortest key a bindings file may hold: the ingest port faces
// the Internet, and a short key is guessed (transcoderd's own keys are 26 characters).
const MinBoundKeyLen = 16

// boundKey is what a stream key in a bindings file may hold: what an RTMP path and
// an SRT stream id carry unchanged.
var boundKey = regexp.MustCompile(`^[A-Za-z0-9._~+-]+$`)

// LoadBindings reads the bindings file at path: a YAML mapping of stream keys (or
// env:NAME, the value of the variable NAME, read by lookupEnv) to {id, ladder} and
// optionally protocols and srt_passphrase. ladderOK tells whether a ladder exists.
// The file holds secrets: one that every user may read is refused. The error names
// every problem with its line, and never a key.
func LoadBindings(path string, lookupEnv func(string) (string, bool), ladderOK func(string) error) (*Bindings, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("'ingest-bindings': %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("'ingest-bindings' %s is readable by every user (mode %04o), and its stream keys are secrets: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("'ingest-bindings' %s cannot be read by the daemon's user (uid %d): chown %d %s", path, os.Getuid(), os.Getuid(), path)
	}
	if err != nil {
		return nil, fmt.Errorf("'ingest-bindings': %w", err)
	}
	return ParseBindings(path, data, lookupEnv, ladderOK)
}

// ParseBindings is LoadBindings of data, read from file.
func ParseBindings(file string, data []byte, lookupEnv func(string) (string, bool), ladderOK func(string) error) (*Bindings, error) {
	p := &bindingParser{file: file, env: lookupEnv, ladderOK: ladderOK, keys: map[Hash]int{}, ids: map[string]int{}}
	b := &Bindings{File: file}
	for _, kv := range p.entries(data) {
		if bd, ok := p.binding(kv); ok {
			b.List = append(b.List, bd)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return b, nil
}

// bindingParser gathers every problem of a bindings file.
type bindingParser struct {
	file     string
	env      func(string) (string, bool)
	ladderOK func(string) error
	errs     []error
	keys     map[Hash]int   // key hash → line of its first binding
	ids      map[string]int // job id → line of its first binding
}

func (p *bindingParser) addf(line int, where, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.file, line, where, fmt.Sprintf(format, args...)))
}

// entries returns the key/value pairs of the file's top-level mapping.
func (p *bindingParser) entries(data []byte) []*ast.MappingValueNode {
	f, err := parseBindingsYAML(data)
	if err != nil {
		line, msg := 0, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
			}
		}
		p.addf(line, "file", "invalid YAML: %s", msg)
		return nil
	}
	var body ast.Node
	if len(f.Docs) > 0 {
		body = f.Docs[0].Body
	}
	switch n := body.(type) {
	case *ast.MappingNode:
		return n.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{n}
	case nil:
		p.addf(1, "file", "holds no bindings: write stream key: {id: JOB, ladder: LADDER} lines")
	default:
		p.addf(line(body), "file", "must be a mapping of stream keys to {id, ladder}")
	}
	return nil
}

// parseBindingsYAML parses data. Duplicate keys are let through, to be reported by
// line without the key; a panic of the YAML library on hostile input is an error.
func parseBindingsYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("yaml parser failed: %v", r)
		}
	}()
	return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
}

func line(n ast.Node) int {
	if n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// bindingValue is what a key binds to, decoded strictly.
type bindingValue struct {
	ID            string   `yaml:"id"`
	Ladder        string   `yaml:"ladder"`
	Protocols     []string `yaml:"protocols"`
	SRTPassphrase string   `yaml:"srt_passphrase"`
}

// binding checks one entry of the file.
func (p *bindingParser) binding(kv *ast.MappingValueNode) (Binding, bool) {
	at := line(kv.Key)
	raw := ""
	if tk := kv.Key.GetToken(); tk != nil {
		raw = tk.Value
	}
	where := "stream key" // a literal key is never told
	if name, ok := strings.CutPrefix(raw, "env:"); ok {
		where = "env:" + name
	}
	n := len(p.errs)
	key := p.key(at, where, raw)
	var v bindingValue
	if err := yaml.NodeToValue(kv.Value, &v, yaml.Strict()); err != nil {
		l, msg := at, err.Error()
		var ye yaml.Error
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				l = tk.Position.Line
			}
		}
		p.addf(l, where, "%s (a binding has id, ladder, protocols and srt_passphrase)", msg)
		return Binding{}, false
	}
	b := Binding{Hash: HashKey(key), ID: v.ID, Ladder: v.Ladder, Line: at}
	p.job(at, where, v, &b)
	if len(p.errs) > n {
		return Binding{}, false
	}
	if first, ok := p.keys[b.Hash]; ok {
		p.addf(at, where, "the same stream key as the binding on line %d", first)
		return Binding{}, false
	}
	p.keys[b.Hash] = at
	return b, true
}

// key is the stream key of an entry: raw, or the variable it names.
func (p *bindingParser) key(at int, where, raw string) string {
	key := raw
	if name, ok := strings.CutPrefix(raw, "env:"); ok {
		v, set := p.env(name)
		switch {
		case !set:
			p.addf(at, where, "$%s is not set", name)
			return ""
		case v == "":
			p.addf(at, where, "$%s is empty", name)
			return ""
		}
		key = v
	}
	switch {
	case len(key) < MinBoundKeyLen:
		p.addf(at, where, "a stream key must be at least %d characters (e.g. openssl rand -hex 16)", MinBoundKeyLen)
	case len(key) > maxKeyLen:
		p.addf(at, where, "a stream key must be at most %d characters", maxKeyLen)
	case !boundKey.MatchString(key):
		p.addf(at, where, "a stream key may hold only A-Z, a-z, 0-9 and . _ ~ + -")
	}
	return key
}

// job checks what an entry binds its key to, and fills b.
func (p *bindingParser) job(at int, where string, v bindingValue, b *Binding) {
	switch {
	case v.ID == "":
		p.addf(at, where+": id", "missing: the id of the job the first publish creates")
	case !ladder.ValidName(v.ID):
		p.addf(at, where+": id", "%q must match [a-z0-9_-]{1,64}", v.ID)
	default:
		if first, ok := p.ids[v.ID]; ok {
			p.addf(at, where+": id", "%q is bound on line %d too", v.ID, first)
		} else {
			p.ids[v.ID] = at
		}
	}
	if v.Ladder == "" {
		p.addf(at, where+": ladder", "missing")
	} else if err := p.ladderOK(v.Ladder); err != nil {
		p.addf(at, where+": ladder", "%q: %v", v.Ladder, err)
	}
	for _, s := range v.Protocols {
		switch pr := Protocol(s); {
		case pr != RTMP && pr != SRT:
			p.addf(at, where+": protocols", "%q is not rtmp or srt", s)
		case slices.Contains(b.Protocols, pr):
			p.addf(at, where+": protocols", "%q is listed twice", s)
		default:
			b.Protocols = append(b.Protocols, pr)
		}
	}
	pass := v.SRTPassphrase
	if name, ok := strings.CutPrefix(pass, "env:"); ok {
		pass, _ = p.env(name)
		if pass == "" {
			p.addf(at, where+": srt_passphrase", "$%s is not set or empty", name)
			return
		}
	}
	switch {
	case pass == "":
	case !b.Allows(SRT):
		p.addf(at, where+": srt_passphrase", "the binding does not allow srt")
	case CheckPassphrase(pass) != nil:
		p.addf(at, where+": srt_passphrase", "%v", CheckPassphrase(pass))
	}
	b.SRTPassphrase = pass
}

// Binder creates the job a stream key is bound to, at the key's first publish.
type Binder interface {
	// Bind creates the job of the key whose hash is h for a publisher over p, unless
	// it exists; ErrNotBound when the key is bound to no job (over p).
	Bind(h Hash, p Protocol) error
}

// ErrNotBound is a key no binding names.
var ErrNotBound = errors.New("stream key bound to no job")

// SetBinder makes b create the jobs of keys that no stream has.
func (h *Hub) SetBinder(b Binder) {
	h.mu.Lock()
	h.binder = b
	h.mu.Unlock()
}

// bind asks the binder to create the job of a key that no stream has; it reports
// whether the hub should look for the key's stream again.
func (h *Hub) bind(hash Hash, p Protocol) bool {
	h.mu.Lock()
	b := h.binder
	h.mu.Unlock()
	if b == nil {
		return false
	}
	err := b.Bind(hash, p)
	if err != nil && !errors.Is(err, ErrNotBound) {
		h.log.Warn().Err(err).Str("protocol", string(p)).Msg("bound stream key: no job")
	}
	return err == nil
}
