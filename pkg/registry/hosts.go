package registry

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/errdefs"
)

// ErrHostSyntax is returned for a host setting (Options.PlainHTTP,
// Options.Insecure, a key of Options.HostAuth) that is not HOST[:PORT].
var ErrHostSyntax = errdefs.New("invalid host", errdefs.ErrUsage)

// ParseHost checks a host setting: HOST or HOST:PORT (an IPv6 address in
// brackets), with no scheme, path or user. It returns it lower-cased. A
// HOST without a port stands for every port of that host; HOST:PORT for
// that port only (see hostSet).
func ParseHost(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrHostSyntax)
	case strings.Contains(s, "://"):
		return "", fmt.Errorf("%w: %q is a URL (give the host, e.g. %s)", ErrHostSyntax, s, hostOfURL(s))
	case strings.ContainsAny(s, "/@?#=, \t\r\n"):
		return "", fmt.Errorf("%w: %q holds characters a host cannot", ErrHostSyntax, s)
	}
	s = strings.ToLower(s)
	host, port := s, ""
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		if strings.Contains(s, "]:") || !strings.HasPrefix(s, "[") {
			h, p, err := net.SplitHostPort(s)
			if err != nil {
				return "", fmt.Errorf("%w: %q: %w", ErrHostSyntax, s, err)
			}
			if p == "" {
				return "", fmt.Errorf("%w: %q: the port after the colon is empty", ErrHostSyntax, s)
			}
			host, port = h, p
		} else if strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		}
	} else if strings.Contains(s, ":") {
		return "", fmt.Errorf("%w: %q: an IPv6 address goes in brackets ([::1]:5000)", ErrHostSyntax, s)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%w: %q: port %q is not a number from 1 to 65535", ErrHostSyntax, s, port)
		}
	}
	if host == "" {
		return "", fmt.Errorf("%w: %q names no host", ErrHostSyntax, s)
	}
	if net.ParseIP(host) == nil {
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
				return "", fmt.Errorf("%w: %q: %q is not a host name", ErrHostSyntax, s, host)
			}
		}
	}
	return s, nil
}

func hostOfURL(s string) string {
	_, rest, _ := strings.Cut(s, "://")
	rest, _, _ = strings.Cut(rest, "/")
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

// hostSet matches request hosts against HOST and HOST:PORT settings: a
// setting without a port matches every port of the host, one with a port
// that port only (a URL without a port has its scheme's default port).
type hostSet struct {
	anyPort map[string]bool // host
	exact   map[string]bool // host:port, canonical
}

func newHostSet(list []string) (hostSet, error) {
	s := hostSet{anyPort: map[string]bool{}, exact: map[string]bool{}}
	for _, h := range list {
		if err := s.add(h); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s hostSet) add(h string) error {
	h, err := ParseHost(h)
	if err != nil {
		return err
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		s.exact[net.JoinHostPort(host, port)] = true
	} else {
		s.anyPort[strings.Trim(h, "[]")] = true
	}
	return nil
}

func (s hostSet) empty() bool { return len(s.anyPort) == 0 && len(s.exact) == 0 }

// match reports whether hostport (a URL's host, with or without a port)
// spoken to with scheme is in the set.
func (s hostSet) match(hostport, scheme string) bool {
	host, port := splitHostPort(hostport, scheme)
	return s.anyPort[host] || s.exact[net.JoinHostPort(host, port)]
}

// splitHostPort splits a URL host into its lower-cased host and port, the
// port defaulting to the scheme's.
func splitHostPort(hostport, scheme string) (string, string) {
	hostport = strings.ToLower(hostport)
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if p == "" {
			p = defaultPort(scheme)
		}
		return h, p
	}
	return strings.Trim(hostport, "[]"), defaultPort(scheme)
}

func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// sameHost reports whether two URL hosts name the same host and port.
func sameHost(a, aScheme, b, bScheme string) bool {
	ah, ap := splitHostPort(a, aScheme)
	bh, bp := splitHostPort(b, bScheme)
	return ah == bh && ap == bp
}
