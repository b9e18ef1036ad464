package awsops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Codes of the guides' troubleshooting tables. 7 to 10 mean different things
// for different resources, hence the several names.
const (
	CodeAWSFailed        = 5  // an AWS call failed; the message is AWS's own
	CodeTimeout          = 6  // "Timeout occurred."
	CodeVIPInVPC         = 7  // aws_vip start: the VIP lies in a VPC CIDR block
	CodeEIPNotAssociated = 7  // aws_eip monitor: the EIP is not associated with us
	CodeRecordMissing    = 7  // aws_dns monitor: the record set does not exist
	CodeRoutingChanged   = 8  // aws_vip monitor: a VIP route targets another ENI
	CodeRecordOtherIP    = 8  // aws_dns monitor: the record set holds another IP
	CodeResolveFailed    = 9  // aws_dns monitor: the name does not resolve
	CodeResolvesOther    = 10 // aws_dns monitor: the name resolves to another IP
	CodeInternal         = 99 // anything else
)

// MsgTimeout is the guides' message for CodeTimeout.
const MsgTimeout = "Timeout occurred."

// Error is a failed operation with its guide code.
type Error struct {
	// Code is the guide code (CodeAWSFailed, CodeTimeout, ...).
	Code int
	// Op names the operation or AWS action ("ReplaceRoute", "switch routes").
	Op string
	// Target is what the operation acted on (rtb-1, eipalloc-1, a zone ID),
	// or a comma-separated list when several failed.
	Target string
	// AWSCode is AWS's error code when AWS answered (InvalidVpcID.NotFound).
	AWSCode string
	// Message is the user-facing message, the guides' wording where they
	// have one ("The vpc ID 'vpc-1' does not exist", "Timeout occurred.").
	Message string
	// Err is the underlying error, if any.
	Err error
}

// Error returns the user-facing message.
func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the guide code of err: 0 for nil, the Code of an *Error in
// its chain, CodeInternal otherwise.
func CodeOf(err error) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AWSCodeOf returns AWS's error code carried by err ("InvalidVpcID.NotFound",
// "UnauthorizedOperation"), or "" when AWS did not answer with an error.
func AWSCodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.AWSCode != "" {
		return e.AWSCode
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// throttleCodes are AWS's throttling error codes, always retried.
var throttleCodes = map[string]bool{
	"RequestLimitExceeded":      true, // EC2
	"Throttling":                true, // Route 53, STS
	"ThrottlingException":       true,
	"PriorRequestNotComplete":   true, // Route 53
	"TooManyRequestsException":  true,
	"RequestThrottled":          true,
	"RequestThrottledException": true,
}

// serverCodes are AWS error codes of server-side faults, retried even when
// the HTTP status does not say 5xx.
var serverCodes = map[string]bool{
	"InternalError":      true,
	"InternalFailure":    true,
	"ServiceUnavailable": true,
	"Unavailable":        true,
	"RequestTimeout":     true,
}

// retryable reports whether an attempt that failed with err may be retried:
// throttling, 5xx answers, transport errors and errors the SDK marks
// retryable (the IMDS client's 401, after it dropped its token).
func retryable(err error) bool {
	var ae smithy.APIError
	isAPI := errors.As(err, &ae)
	if isAPI && (throttleCodes[ae.ErrorCode()] || serverCodes[ae.ErrorCode()]) {
		return true
	}
	var st interface{ HTTPStatusCode() int }
	if errors.As(err, &st) && st.HTTPStatusCode() >= 500 {
		return true
	}
	var rt interface{ RetryableError() bool }
	if errors.As(err, &rt) && rt.RetryableError() {
		return true
	}
	if isAPI {
		return false
	}
	var se *smithyhttp.RequestSendError
	var ne net.Error
	switch {
	case errors.As(err, &se), errors.As(err, &ne):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	}
	return false
}

// awsError turns the final error of an AWS call into an *Error:
// CodeAWSFailed with AWS's own message when AWS answered, CodeTimeout when
// the deadline passed, CodeInternal when the operation was canceled.
func awsError(ctx context.Context, action, target string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if ctx.Err() != nil {
		return ctxError(ctx, action, target, err)
	}
	out := &Error{Code: CodeAWSFailed, Op: action, Target: target, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		out.AWSCode = ae.ErrorCode()
		out.Message = ae.ErrorMessage()
		if out.Message == "" {
			out.Message = fmt.Sprintf("%s failed: %s", action, ae.ErrorCode())
		}
		return out
	}
	out.Message = fmt.Sprintf("%s failed: %v", action, err)
	return out
}

// ctxError is the error of an operation whose context ended: CodeTimeout
// when its deadline passed, CodeInternal when it was canceled. last is the
// last attempt's error, kept in the chain.
func ctxError(ctx context.Context, op, target string, last error) *Error {
	cause := ctx.Err()
	if errors.Is(cause, context.Canceled) {
		return &Error{Code: CodeInternal, Op: op, Target: target, Message: "Operation canceled.", Err: joinCause(cause, last)}
	}
	return &Error{Code: CodeTimeout, Op: op, Target: target, Message: MsgTimeout, Err: joinCause(cause, last)}
}

// joinCause returns cause with the last attempt's error beside it.
func joinCause(cause, last error) error {
	switch {
	case last == nil:
		return cause
	case errors.Is(last, cause):
		return last
	}
	return fmt.Errorf("%w (last attempt: %w)", cause, last)
}

// invalid is the error of a bad argument, found before any AWS call.
func invalid(op, target, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Code: CodeInternal, Op: op, Target: target, Message: msg, Err: errors.New(msg)}
}
