package api

// GroupRequest is the optional body of POST /v1/groups/{name}/start and
// /v1/groups/{name}/move.
type GroupRequest struct {
	// Server is the server to run the group on; empty lets vigild choose the
	// highest-priority eligible server.
	Server string `json:"server,omitempty"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	// Error is the error message.
	Error string `json:"error"`
}
