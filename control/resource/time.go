package resource

import "time"

func timeUntil(t time.Time) time.Duration {
	d := time.Until(t)
	if d <= 0 {
		return time.Millisecond
	}
	return d
}
