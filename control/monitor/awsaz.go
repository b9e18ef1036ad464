package monitor

import (
	"context"
	"fmt"

	"github.com/vigil-ha/vigil/awsops"
	"github.com/vigil-ha/vigil/control/config"
)

// AZState asks AWS for an availability zone's state.
type AZState func(ctx context.Context, az string) (string, error)

// NewAWSAZ returns the aws_az checker: the zone's state is "available" (or
// "information", AWS's notice that needs no action), else an error with
// code 1. A failed AWS call is, by onAPIFailure, a warning with the guides'
// code plus 100 (105, 106) that recovers nothing, an error with the code
// itself (5, 6), or nothing at all.
func NewAWSAZ(az, onAPIFailure string, state AZState) Checker {
	return CheckerFunc(func(ctx context.Context) Result {
		s, err := state(ctx, az)
		if err != nil {
			code := awsops.CodeOf(err)
			switch onAPIFailure {
			case config.OnAPIFailureError:
				return Result{Status: Error, Code: code, Message: err.Error()}
			case config.OnAPIFailureNone:
				return Result{Status: OK, Message: "AWS call failed, ignored: " + err.Error()}
			default:
				return Result{Status: Warning, Code: code + 100, Message: err.Error()}
			}
		}
		switch s {
		case "available", "information":
			return Result{Status: OK}
		}
		name := az
		if name == "" {
			name = "of this instance"
		}
		return Result{Status: Error, Code: CodeFailed, Message: fmt.Sprintf("The availability zone %s is %s.", name, s)}
	})
}
