package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves a goroutine behind: a node's
// loop, an operation or a monitor that outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
