package awsemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SigV4 constants.
const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
	maxClockSkew  = 15 * time.Minute
)

// sigV4Auth is a parsed Authorization header.
type sigV4Auth struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// scope returns the credential scope string.
func (a sigV4Auth) scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
}

// parseSigV4Auth parses "AWS4-HMAC-SHA256 Credential=AKID/date/region/
// service/aws4_request, SignedHeaders=a;b, Signature=hex".
func parseSigV4Auth(h string) (sigV4Auth, *apiError) {
	var a sigV4Auth
	bad := func(format string, args ...any) (sigV4Auth, *apiError) {
		return sigV4Auth{}, newError(http.StatusBadRequest, "IncompleteSignature", format, args...)
	}
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != sigAlgorithm {
		return bad("unsupported authorization type")
	}
	var cred, signed, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return bad("authorization header requires key=value pairs")
		}
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		default:
			return bad("unknown authorization parameter %q", k)
		}
	}
	switch {
	case cred == "":
		return bad("Authorization header requires 'Credential' parameter")
	case signed == "":
		return bad("Authorization header requires 'SignedHeaders' parameter")
	case sig == "":
		return bad("Authorization header requires 'Signature' parameter")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || len(parts[1]) != 8 || parts[2] == "" || parts[3] == "" {
		return bad("Credential should be scoped to a valid region and service (%q)", cred)
	}
	if _, err := time.Parse("20060102", parts[1]); err != nil {
		return bad("Credential has an invalid date %q", parts[1])
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]
	a.SignedHeaders = strings.Split(signed, ";")
	for i, name := range a.SignedHeaders {
		if name == "" || name != strings.ToLower(name) || (i > 0 && a.SignedHeaders[i-1] >= name) {
			return bad("SignedHeaders must be lower case, sorted and unique")
		}
	}
	if len(sig) != 64 {
		return bad("Signature must be 64 hex characters")
	}
	if _, err := hex.DecodeString(sig); err != nil {
		return bad("Signature must be 64 hex characters")
	}
	a.Signature = strings.ToLower(sig)
	return a, nil
}

// authErrors are a service's answers to authentication failures.
type authErrors struct {
	missing, unknownKey *apiError
}

func authErrorsFor(service string) authErrors {
	switch service {
	case "ec2":
		af := newError(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		return authErrors{missing: af, unknownKey: af}
	case "sts":
		return authErrors{
			missing:    newError(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"),
			unknownKey: newError(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."),
		}
	default:
		return authErrors{
			missing:    newError(http.StatusForbidden, "MissingAuthenticationToken", "Missing Authentication Token"),
			unknownKey: newError(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."),
		}
	}
}

// authenticate verifies the request's SigV4 signature for service and
// returns the credential that made it. payload is the request body.
func (s *Server) authenticate(r *http.Request, payload []byte, service string) (Credential, *apiError) {
	errs := authErrorsFor(service)
	h := r.Header.Get("Authorization")
	if h == "" {
		return Credential{}, errs.missing
	}
	a, aerr := parseSigV4Auth(h)
	if aerr != nil {
		return Credential{}, aerr
	}
	if a.Service != service {
		return Credential{}, newError(http.StatusForbidden, "SignatureDoesNotMatch",
			"Credential should be scoped to correct service: '%s'. ", service)
	}
	s.mu.Lock()
	region := s.world.Region
	var cred *Credential
	if c := s.world.credential(a.AccessKeyID); c != nil {
		cp := *c
		cp.Deny = cloneStrings(c.Deny)
		cred = &cp
	}
	s.mu.Unlock()
	// Route 53 is global; the SDK signs it for whatever region it has.
	if service != "route53" && a.Region != region {
		return Credential{}, newError(http.StatusForbidden, "SignatureDoesNotMatch",
			"Credential should be scoped to a valid region, not '%s'. ", a.Region)
	}
	if !slices.Contains(a.SignedHeaders, "host") {
		return Credential{}, newError(http.StatusBadRequest, "IncompleteSignature", "'Host' must be a signed header")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return Credential{}, newError(http.StatusBadRequest, "IncompleteSignature",
			"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return Credential{}, newError(http.StatusBadRequest, "IncompleteSignature", "Invalid X-Amz-Date %q", amzDate)
	}
	if amzDate[:8] != a.Date {
		return Credential{}, newError(http.StatusForbidden, "SignatureDoesNotMatch",
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			a.Date, amzDate[:8], amzDate)
	}
	now := time.Now().UTC()
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		if service == "ec2" {
			return Credential{}, newError(http.StatusBadRequest, "RequestExpired", "Request has expired.")
		}
		if d < 0 {
			return Credential{}, newError(http.StatusForbidden, "SignatureDoesNotMatch",
				"Signature not yet current: %s is still later than %s (%s + 15 min.)",
				amzDate, now.Add(maxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
		}
		return Credential{}, newError(http.StatusForbidden, "SignatureDoesNotMatch",
			"Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.Add(-maxClockSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if cred == nil {
		return Credential{}, errs.unknownKey
	}
	payloadHash := sha256Hex(payload)
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" {
		if v != "UNSIGNED-PAYLOAD" && v != payloadHash {
			return Credential{}, newError(http.StatusBadRequest, "XAmzContentSHA256Mismatch",
				"The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		payloadHash = v
	}
	canonical, err := canonicalRequest(r, a.SignedHeaders, payloadHash)
	if err != nil {
		return Credential{}, errSignatureDoesNotMatch()
	}
	want := sigV4Signature(cred.SecretAccessKey, a, amzDate, canonical)
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return Credential{}, errSignatureDoesNotMatch()
	}
	return *cred, nil
}

// canonicalRequest builds SigV4's canonical request from what the server
// received: method, doubly escaped path, sorted query, the signed headers'
// values and the payload hash.
func canonicalRequest(r *http.Request, signedHeaders []string, payloadHash string) (string, error) {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uriEncode(path, false))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		switch name {
		case "host":
			b.WriteString(collapseSpaces(r.Host))
		case "content-length":
			if v := r.Header.Get("Content-Length"); v != "" {
				b.WriteString(collapseSpaces(v))
			} else {
				b.WriteString(strconv.FormatInt(r.ContentLength, 10))
			}
		default:
			vals := r.Header.Values(name)
			if len(vals) == 0 {
				return "", errors.New("signed header " + name + " is missing")
			}
			for i, v := range vals {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(collapseSpaces(v))
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String(), nil
}

// canonicalQuery encodes every name and value with SigV4's URI encoding and
// sorts the pairs after encoding.
func canonicalQuery(raw string) (string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return "", err
	}
	pairs := make([]string, 0, len(vals))
	for k, vs := range vals {
		ek := uriEncode(k, true)
		for _, v := range vs {
			pairs = append(pairs, ek+"="+uriEncode(v, true))
		}
	}
	slices.SortFunc(pairs, func(x, y string) int {
		xk, xv, _ := strings.Cut(x, "=")
		yk, yv, _ := strings.Cut(y, "=")
		if c := strings.Compare(xk, yk); c != 0 {
			return c
		}
		return strings.Compare(xv, yv)
	})
	return strings.Join(pairs, "&"), nil
}

// uriEncode percent-encodes every byte but the unreserved characters, and
// '/' unless encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// collapseSpaces trims a header value's spaces and folds runs of spaces
// into one, as the SDK's signer does.
func collapseSpaces(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// sigV4Signature returns the hex signature of a canonical request.
func sigV4Signature(secret string, a sigV4Auth, amzDate, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + a.scope() + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+secret), a.Date)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, "aws4_request")
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
