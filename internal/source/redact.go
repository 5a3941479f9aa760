package source

import (
	"net/url"
	"strings"
)

// Mask is what Redact puts in place of a secret.
const Mask = "xxxxx"

// Redact masks what in a source URL may be a secret, so the source can go in
// errors, logs and API answers: the password, every query value (an SRT
// passphrase, a token) but an RTSP source's ?transport= (TransportParam), and the
// fragment. The password is also masked where it appears decoded in the user
// name, the path and the query keys, and then, as it is, path-escaped or
// query-escaped, anywhere in the result. A string that is not a URL with a scheme
// is returned as it is.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return source
	}
	pw, hasPW := u.User.Password()
	hide := func(s string) string {
		if hasPW && pw != "" {
			return maskAll(s, pw)
		}
		return s
	}
	if hasPW {
		u.User = url.UserPassword(hide(u.User.Username()), Mask)
	}
	if p := hide(u.Path); p != u.Path {
		u.Path, u.RawPath = p, "" // re-escaped from the masked path
	}
	if u.RawQuery != "" {
		q := url.Values{}
		for k, v := range u.Query() {
			if shownTransport(u.Scheme, k, v) {
				q[k] = v
				continue
			}
			q[hide(k)] = []string{Mask}
		}
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	shown := u.String()
	if hasPW && pw != "" {
		shown = maskAll(shown, pw, url.PathEscape(pw), url.QueryEscape(pw))
	}
	return shown
}

// maskAll replaces every occurrence of each secret in s with Mask, again and again
// until none is left: a replacement can make a new occurrence with what is around
// it. Secrets that Mask itself contains are left alone (they cannot be told from
// it). The loop ends: each replacement removes a character other than Mask's own,
// or shortens a run of them.
func maskAll(s string, secrets ...string) string {
	for again := true; again; {
		again = false
		for _, secret := range secrets {
			if secret != "" && !strings.Contains(Mask, secret) && strings.Contains(s, secret) {
				s = strings.ReplaceAll(s, secret, Mask)
				again = true
			}
		}
	}
	return s
}

// Redactor returns a function that masks, in a line ffmpeg printed about source,
// what Redact masks: the source as given becomes Redact(source), and a password
// or query value of it shown elsewhere in the line (ffmpeg names a URL in parts
// at times) is masked too; an RTSP transport (tcp, udp) is not, or every "tcp" of
// every line would be.
func Redactor(source string) func(string) string {
	shown := Redact(source)
	u, err := url.Parse(source)
	if shown == source || err != nil {
		return func(line string) string { return line }
	}
	pairs := []string{source, shown}
	var secrets []string
	if pw, ok := u.User.Password(); ok && pw != "" {
		_, escaped, _ := strings.Cut(u.User.String(), ":") // user:password, escaped
		if len(pw) >= 3 {
			secrets = append(secrets, pw, escaped)
		} else { // not every "a" of every line: only where it is a password
			pairs = append(pairs, ":"+pw+"@", ":"+Mask+"@", ":"+escaped+"@", ":"+Mask+"@")
		}
	}
	for _, pair := range strings.Split(u.RawQuery, "&") {
		if k, v, ok := strings.Cut(pair, "="); ok && len(v) >= 3 && !shownTransport(u.Scheme, k, []string{v}) {
			secrets = append(secrets, v) // shorter values (mode=1) are not worth garbling every line for
		}
	}
	r := strings.NewReplacer(pairs...)
	return func(line string) string {
		return maskAll(r.Replace(line), secrets...)
	}
}
