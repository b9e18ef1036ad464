package awsemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The emulator's own admin API, for the demo and manual tests. It needs no
// signature and exists only here, never on AWS:
//
//	GET    /_emu/state     the World as JSON
//	GET    /_emu/calls     the call log as JSON
//	GET    /_emu/faults    the injected faults
//	POST   /_emu/faults    {"action","latency_ms","error_code","message","http_status","count"}
//	DELETE /_emu/faults    remove every fault
//	POST   /_emu/route     {"route_table_id","destination","eni_id"}: point a route at an ENI
//	POST   /_emu/az        {"name","state"}: set an availability zone's state
//	POST   /_emu/throttle  {"on": true|false}

type adminFault struct {
	Action     string `json:"action"`
	LatencyMS  int64  `json:"latency_ms,omitempty"`
	ErrorCode  string `json:"error_code,omitempty"`
	Message    string `json:"message,omitempty"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Count      int    `json:"count,omitempty"`
}

type adminRoute struct {
	RouteTableID string `json:"route_table_id"`
	Destination  string `json:"destination"`
	ENIID        string `json:"eni_id"`
}

type adminAZ struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

type adminThrottle struct {
	On bool `json:"on"`
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /_emu/state":
		writeJSON(w, http.StatusOK, s.Snapshot())
	case "GET /_emu/calls":
		writeJSON(w, http.StatusOK, s.Calls())
	case "GET /_emu/faults":
		writeJSON(w, http.StatusOK, s.adminFaults())
	case "DELETE /_emu/faults":
		s.ClearFaults()
		writeJSON(w, http.StatusOK, map[string]string{"status": "cleared"})
	case "POST /_emu/faults":
		var f adminFault
		if !readJSON(w, r, &f) {
			return
		}
		if f.Action == "" {
			writeJSONError(w, http.StatusBadRequest, errors.New("action is required"))
			return
		}
		if f.LatencyMS < 0 || f.Count < 0 || f.HTTPStatus < 0 || f.HTTPStatus > 599 {
			writeJSONError(w, http.StatusBadRequest, errors.New("latency_ms, count and http_status must be in range"))
			return
		}
		s.SetFault(f.Action, Fault{
			Latency: time.Duration(f.LatencyMS) * time.Millisecond, ErrorCode: f.ErrorCode,
			Message: f.Message, HTTPStatus: f.HTTPStatus, Count: f.Count,
		})
		writeJSON(w, http.StatusOK, s.adminFaults())
	case "POST /_emu/route":
		var a adminRoute
		if !readJSON(w, r, &a) {
			return
		}
		err := s.Update(func(wd *World) error {
			rt := wd.routeTable(a.RouteTableID)
			if rt == nil {
				return fmt.Errorf("route table %q does not exist", a.RouteTableID)
			}
			p, err := parseCIDR4(a.Destination)
			if err != nil {
				return err
			}
			if i := routeIndex(rt, p.String()); i >= 0 {
				rt.Routes[i] = Route{Destination: p.String(), ENIID: a.ENIID}
			} else {
				rt.Routes = append(rt.Routes, Route{Destination: p.String(), ENIID: a.ENIID})
			}
			return nil
		})
		s.writeUpdateResult(w, err)
	case "POST /_emu/az":
		var a adminAZ
		if !readJSON(w, r, &a) {
			return
		}
		err := s.Update(func(wd *World) error {
			az := wd.az(a.Name)
			if az == nil {
				return fmt.Errorf("availability zone %q does not exist", a.Name)
			}
			az.State = a.State
			return nil
		})
		s.writeUpdateResult(w, err)
	case "POST /_emu/throttle":
		var a adminThrottle
		if !readJSON(w, r, &a) {
			return
		}
		s.SetThrottling(a.On)
		writeJSON(w, http.StatusOK, a)
	default:
		writeJSONError(w, http.StatusNotFound, fmt.Errorf("no admin endpoint %s", route))
	}
}

// adminFaults lists the injected faults as POST /_emu/faults takes them.
func (s *Server) adminFaults() []adminFault {
	faults := s.Faults()
	out := make([]adminFault, 0, len(faults))
	for action, f := range faults {
		out = append(out, adminFault{
			Action: action, LatencyMS: f.Latency.Milliseconds(), ErrorCode: f.ErrorCode,
			Message: f.Message, HTTPStatus: f.HTTPStatus, Count: f.Count,
		})
	}
	slices.SortFunc(out, func(a, b adminFault) int { return strings.Compare(a.Action, b.Action) })
	return out
}

func (s *Server) writeUpdateResult(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, s.Snapshot())
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSONError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
