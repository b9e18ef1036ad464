package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Syntax checks of single values. Each returns "" when the value is fine,
// else what is wrong with it, for an error message.

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	azRE       = regexp.MustCompile(`^[a-z]{2,}[a-z0-9]*(-[a-z0-9]+)+$`)
	vpcRE      = regexp.MustCompile(`^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	eniRE      = regexp.MustCompile(`^eni-([0-9a-f]{8}|[0-9a-f]{17})$`)
	eipallocRE = regexp.MustCompile(`^eipalloc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	zoneRE     = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)
	rtbRE      = regexp.MustCompile(`^rtb-([0-9a-f]{8}|[0-9a-f]{17})$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	labelRE    = regexp.MustCompile(`^([A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_-]{0,61}[A-Za-z0-9_])$`)
	hostRE     = regexp.MustCompile(`^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z0-9])$`)
	envRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func checkName(s string) string {
	if !nameRE.MatchString(s) {
		return fmt.Sprintf("invalid name %q: use up to 63 letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return ""
}

func checkIP(s string) string {
	if _, err := netip.ParseAddr(s); err != nil || strings.Contains(s, "%") {
		return fmt.Sprintf("%q is not an IP address", s)
	}
	return ""
}

func checkIPv4(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Sprintf("%q is not an IPv4 address", s)
	}
	return ""
}

func checkCIDR(s string) string {
	if _, err := netip.ParsePrefix(s); err != nil {
		return fmt.Sprintf("%q is not an address with its prefix length (like 198.18.100.10/24)", s)
	}
	return ""
}

// checkHostPort checks host:port; the host is an IP address or a host name,
// never resolved here. emptyHost allows ":port" (listen on every address).
func checkHostPort(s string, emptyHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Sprintf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	switch {
	case host == "" && emptyHost:
	case host == "":
		return fmt.Sprintf("%q has no host", s)
	case checkIP(host) == "":
	case checkHostName(host) != "":
		return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return ""
}

func checkHostName(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return "bad host name"
	}
	for _, l := range strings.Split(s, ".") {
		if !hostRE.MatchString(l) {
			return "bad host name"
		}
	}
	return ""
}

// checkRecordName checks a Route 53 record name: an FQDN with its final dot.
func checkRecordName(s string) string {
	if !strings.HasSuffix(s, ".") {
		return fmt.Sprintf("%q must end with a dot (srv.hz1.local.)", s)
	}
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(s) > 254 {
		return fmt.Sprintf("%q is not a DNS name", s)
	}
	for i, l := range strings.Split(name, ".") {
		if i == 0 && l == "*" {
			continue
		}
		if !labelRE.MatchString(l) {
			return fmt.Sprintf("%q is not a DNS name: bad label %q", s, l)
		}
	}
	return ""
}

func checkAZ(s string) string {
	if !azRE.MatchString(s) {
		return fmt.Sprintf("%q is not an availability zone (like ap-northeast-1a)", s)
	}
	return ""
}

func checkID(re *regexp.Regexp, s, example string) string {
	if !re.MatchString(s) {
		return fmt.Sprintf("%q does not look like %s", s, example)
	}
	return ""
}

// checkInterface checks a Linux interface name.
func checkInterface(s string) string {
	if len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n") {
		return fmt.Sprintf("%q is not an interface name", s)
	}
	return ""
}

func checkAbsPath(s string) string {
	if !strings.HasPrefix(s, "/") {
		return fmt.Sprintf("%q is not an absolute path", s)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Sprintf("%q contains a NUL byte", s)
	}
	return ""
}

func checkEnvName(s string) string {
	if !envRE.MatchString(s) {
		return fmt.Sprintf("%q is not an environment variable name", s)
	}
	return ""
}

// oneOf checks that s is one of valid.
func oneOf(s string, valid ...string) string {
	for _, v := range valid {
		if s == v {
			return ""
		}
	}
	return fmt.Sprintf("%q is not one of %s", s, strings.Join(valid, ", "))
}

func checkRegion(s string) string {
	if !regionRE.MatchString(s) {
		return fmt.Sprintf("%q is not an AWS region (ap-northeast-1)", s)
	}
	return ""
}

// checkHTTPURL checks an endpoint URL: http or https, a host, nothing else.
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q is not an http(s) URL (http://127.0.0.1:4566)", s)
	}
	return ""
}
