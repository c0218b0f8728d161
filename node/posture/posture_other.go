//go:build !linux && !darwin && !windows

package posture

import (
	"context"
	"runtime"
)

// osName is GOOS on the OSes without a collector of their own.
const osName = runtime.GOOS

// collectPlatform knows nothing more on this OS: only the shared
// attributes are reported.
func (c *Collector) collectPlatform(context.Context, func(name, value string)) {}
