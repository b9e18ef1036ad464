package awsemu

import (
	"encoding/xml"
	"fmt"
	"net/http"
)

// apiError is an AWS error answer: an HTTP status, a code and a message.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors shared by the services.
func errInvalidParameterValue(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "InvalidParameterValue", format, args...)
}

func errMissingParameter(name string) *apiError {
	return newError(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter %s", name)
}

// errSignatureDoesNotMatch is AWS's answer to a wrong signature.
func errSignatureDoesNotMatch() *apiError {
	return newError(http.StatusForbidden, "SignatureDoesNotMatch",
		"The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
}

func errThrottled() *apiError {
	return newError(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
}

// defaultStatus returns the HTTP status AWS answers an error code with.
func defaultStatus(code string) int {
	switch code {
	case "AuthFailure":
		return http.StatusUnauthorized
	case "UnauthorizedOperation", "AccessDenied", "SignatureDoesNotMatch",
		"InvalidClientTokenId", "MissingAuthenticationToken":
		return http.StatusForbidden
	case "DryRunOperation":
		return http.StatusPreconditionFailed
	case "NoSuchHostedZone", "NoSuchChange":
		return http.StatusNotFound
	case "InternalError", "InternalFailure", "ServiceFailure":
		return http.StatusInternalServerError
	case "RequestLimitExceeded", "Unavailable", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// defaultMessage returns AWS's message for an error code, for injected
// faults that give none.
func defaultMessage(code string) string {
	switch code {
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	case "Throttling":
		return "Rate exceeded"
	case "InternalError":
		return "An internal error has occurred"
	case "Unavailable", "ServiceUnavailable":
		return "The server is overloaded or unable to handle the request."
	case "UnauthorizedOperation":
		return "You are not authorized to perform this operation."
	case "PriorRequestNotComplete":
		return "The request was rejected because Route 53 was still processing a prior request."
	}
	return "Injected fault."
}

// EC2's error document.
type ec2ErrorResponse struct {
	XMLName   xml.Name       `xml:"Response"`
	Errors    []ec2ErrorItem `xml:"Errors>Error"`
	RequestID string         `xml:"RequestID"`
}

type ec2ErrorItem struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// The ErrorResponse document of STS (Query) and Route 53 (REST-XML).
type errorResponse struct {
	XMLName   xml.Name       `xml:"ErrorResponse"`
	Xmlns     string         `xml:"xmlns,attr"`
	Error     errorResponse1 `xml:"Error"`
	RequestID string         `xml:"RequestId"`
}

type errorResponse1 struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeEC2Error(w http.ResponseWriter, reqID string, e *apiError) {
	writeXML(w, e.Status, reqID, ec2ErrorResponse{
		Errors:    []ec2ErrorItem{{Code: e.Code, Message: e.Message}},
		RequestID: reqID,
	})
}

func writeErrorResponse(w http.ResponseWriter, xmlns, reqID string, e *apiError) {
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, e.Status, reqID, errorResponse{
		Xmlns:     xmlns,
		Error:     errorResponse1{Type: typ, Code: e.Code, Message: e.Message},
		RequestID: reqID,
	})
}

// writeXML writes v as an XML document with AWS's request ID headers.
func writeXML(w http.ResponseWriter, status int, reqID string, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = xml.Marshal(ec2ErrorResponse{
			Errors:    []ec2ErrorItem{{Code: "InternalError", Message: "marshal response: " + err.Error()}},
			RequestID: reqID,
		})
	}
	writeRaw(w, status, reqID, append([]byte(xml.Header), body...))
}

func writeRaw(w http.ResponseWriter, status int, reqID string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("x-amzn-RequestId", reqID)
	h.Set("x-amz-request-id", reqID)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
