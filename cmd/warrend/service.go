package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/warrenmesh/warren/node/service"
)

// serviceName names warrend's service on every OS.
const serviceName = "warrend"

const serviceDescription = "Warren node daemon (zero-trust mesh)"

// installFlags are install-service's own flags, on top of the daemon's.
func installFlags(fs *flag.FlagSet) (dir *string, print *bool) {
	dir = fs.String("service-dir", os.Getenv("WARREN_SERVICE_DIR"),
		"write the service definition here instead of the OS's place (systemd: "+service.SystemdDir+", launchd: "+service.LaunchdDir+"; $WARREN_SERVICE_DIR)")
	print = fs.Bool("print", false, "print what would be done and the service definition, and do nothing")
	return dir, print
}

// installService installs warrend as this OS's service, started at boot,
// with the daemon flags given here on its command line (--state-dir made
// absolute, --socket-group defaulting to the "warren" group on Linux and
// macOS, created if missing), and starts it.
func installService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := newFlags("warrend install-service", stderr)
	dir, print := installFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: warrend install-service [flags]\n\n"+
			"Installs warrend as this OS's service (run as root, or from an administrator\n"+
			"prompt on Windows) and starts it. The daemon flags given here are carried\n"+
			"into the service's command line; members of --socket-group (default %q)\n"+
			"may then use the warren CLI without sudo.\n\nFlags:\n", service.DefaultGroup)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see warrend install-service --help)", fs.Arg(0))
	}
	if _, err := o.config(); err != nil { // the daemon would refuse them at start
		return err
	}
	if _, err := newLogger(io.Discard, nil, *o.logFormat, *o.logLevel); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find warrend's own path: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	cmdline, err := service.CommandLine(fs,
		[]service.Arg{{Name: "state-dir", Value: defaultStateDir}, {Name: "socket-group", Value: service.DefaultGroup}},
		[]string{"service-dir", "print"},
		[]string{"state-dir", "socket"})
	if err != nil {
		return err
	}
	group := service.DefaultGroup
	if f := setFlag(fs, "socket-group"); f != nil {
		group = f.Value.String()
	}
	stateDir, err := filepath.Abs(*o.stateDir)
	if err != nil {
		return err
	}
	socketDir, err := filepath.Abs(filepath.Dir(*o.socket))
	if err != nil {
		return err
	}
	plan, err := service.InstallPlan(service.Config{
		Name: serviceName, Description: serviceDescription, Executable: exe, Args: cmdline, Dir: *dir, Group: group,
		WritableDirs: []string{stateDir, socketDir},
	})
	if err != nil {
		return err
	}
	if *print {
		plan.Print(stdout)
		return nil
	}
	if err := plan.Apply(ctx, stdout); err != nil {
		return fmt.Errorf("install-service: %w", err)
	}
	fmt.Fprintln(stdout, "warrend runs as a service now. Join the mesh with: warren up --coordinator URL")
	if group != "" {
		fmt.Fprintf(stdout, "Members of the group %q may use warren without sudo (they may need to log in again).\n", group)
	}
	return nil
}

// uninstallService stops warrend's service and removes it; the state
// directory (the node's keys) and the group stay.
func uninstallService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warrend uninstall-service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir, print := installFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see warrend uninstall-service --help)", fs.Arg(0))
	}
	plan, err := service.UninstallPlan(service.Config{Name: serviceName, Dir: *dir})
	if err != nil {
		return err
	}
	if *print {
		plan.Print(stdout)
		return nil
	}
	if err := plan.Apply(ctx, stdout); err != nil {
		return fmt.Errorf("uninstall-service: %w", err)
	}
	fmt.Fprintln(stdout, "warrend's service is removed; its state (the node's keys) stays in the state directory.")
	return nil
}

// setFlag returns the flag named name if the command line set it.
func setFlag(fs *flag.FlagSet, name string) *flag.Flag {
	var found *flag.Flag
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = f
		}
	})
	return found
}
