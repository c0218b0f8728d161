package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ExitError ends a command with exit status Code. Main prints Err, if
// any; a nil Err means the command has already said what it had to (for
// example "DENIED" on its output).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs a command's body with a context cancelled by SIGINT or SIGTERM,
// prints its error as "name: error" (not for --help) and exits 1 on
// failure, or with an ExitError's code.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		code := 1
		var ee *ExitError
		if errors.As(err, &ee) {
			code = ee.Code
		}
		if !errors.Is(err, flag.ErrHelp) && (ee == nil || ee.Err != nil) {
			fmt.Fprintln(os.Stderr, name+":", err)
		}
		os.Exit(code)
	}
}
