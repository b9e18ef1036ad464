package awsemu

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// stsVersion is the API version STS requests carry.
const stsVersion = "2011-06-15"

// errCanceled answers a call whose client left while it was delayed.
var errCanceled = &apiError{Status: 499, Code: "RequestCanceled", Message: "The client closed the request."}

// serveQuery serves the Query APIs, EC2 and STS, told apart by the
// service of the SigV4 credential scope or else by the API version.
func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	rec := CallRecord{Start: time.Now()}
	sw := &statusWriter{ResponseWriter: w}
	reqID := newRequestID()
	defer func() {
		rec.End = time.Now()
		rec.Status = sw.status
		s.record(rec)
	}()

	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	raw := r.URL.RawQuery
	if r.Method == http.MethodPost && len(body) > 0 {
		raw = string(body)
	}
	q, perr := parseQuery(raw)
	rec.Service = queryService(r, q)
	rec.Action = q["Action"]
	fail := func(e *apiError) {
		rec.ErrorCode = e.Code
		if rec.Service == "sts" {
			writeErrorResponse(sw, "https://sts.amazonaws.com/doc/"+stsVersion+"/", reqID, e)
		} else {
			writeEC2Error(sw, reqID, e)
		}
	}
	switch {
	case readErr != nil:
		var tooBig *http.MaxBytesError
		if errors.As(readErr, &tooBig) {
			fail(newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request is larger than %d bytes.", maxBody))
		} else {
			fail(newError(http.StatusBadRequest, "MalformedQueryString", "The request body could not be read."))
		}
		return
	case r.Method != http.MethodPost && r.Method != http.MethodGet:
		fail(newError(http.StatusMethodNotAllowed, "InvalidHttpRequest", "The HTTP method %s is not supported.", r.Method))
		return
	case perr != nil:
		fail(perr)
		return
	}

	if rec.Service == "sts" {
		if e := s.serveSTS(sw, r, body, q, reqID, &rec); e != nil {
			fail(e)
		}
		return
	}
	a, known := ec2Actions[rec.Action]
	if known && a.target != nil {
		rec.Target = a.target(q)
	}
	cred, e := s.admit(r, body, "ec2", rec.Action, known && a.mutating, &rec)
	if e != nil {
		fail(e)
		return
	}
	switch {
	case rec.Action == "":
		fail(newError(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action"))
		return
	case !known:
		fail(newError(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", rec.Action))
		return
	}
	if e := q.check(a.params); e != nil {
		fail(e)
		return
	}
	if q["Version"] == "" {
		fail(errMissingParameter("Version"))
		return
	}
	dryRun, e := q.boolean("DryRun")
	if e != nil {
		fail(e)
		return
	}
	if denied(cred, "ec2", rec.Action) {
		fail(newError(http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."))
		return
	}
	if dryRun {
		fail(newError(http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."))
		return
	}
	s.mu.Lock()
	resp, e := a.run(s, q)
	s.mu.Unlock()
	if e != nil {
		fail(e)
		return
	}
	writeEC2(sw, rec.Action, reqID, resp)
}

// queryService returns "sts" or "ec2" for a Query API request.
func queryService(r *http.Request, q query) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if a, err := parseSigV4Auth(h); err == nil && (a.Service == "sts" || a.Service == "ec2") {
			return a.Service
		}
	}
	if q["Version"] == stsVersion {
		return "sts"
	}
	return "ec2"
}

// admit runs what precedes every API action: the injected latency, the
// signature check, throttling (EC2 only) and the injected error. It
// returns the credential that signed the request.
func (s *Server) admit(r *http.Request, payload []byte, service, action string, mutating bool, rec *CallRecord) (Credential, *apiError) {
	f, faulty := s.takeFault(action, true)
	if faulty && !sleep(r.Context(), f.Latency) {
		return Credential{}, errCanceled
	}
	cred, e := s.authenticate(r, payload, service)
	if e != nil {
		return Credential{}, e
	}
	rec.AccessKeyID = cred.AccessKeyID
	if service == "ec2" && !s.allow(cred.AccessKeyID, mutating) {
		return Credential{}, errThrottled()
	}
	if faulty {
		if e := f.apiError(); e != nil {
			return Credential{}, e
		}
	}
	return cred, nil
}

// denied reports whether the credential's deny list holds the action:
// "Action", "service:Action", "service:*" or "*".
func denied(c Credential, service, action string) bool {
	return slices.ContainsFunc(c.Deny, func(d string) bool {
		return d == "*" || strings.EqualFold(d, action) ||
			strings.EqualFold(d, service+":"+action) || strings.EqualFold(d, service+":*")
	})
}
