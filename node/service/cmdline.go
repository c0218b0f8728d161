package service

import (
	"flag"
	"path/filepath"
	"slices"

	"github.com/warrenmesh/warren/internal/cli"
)

// Arg is one flag of the service's command line.
type Arg struct {
	Name, Value string
}

// CommandLine returns the arguments the service runs the daemon with:
// first base, each replaced by the value the user set on fs if any; then
// every other flag set on fs, by name, except those named in skip (the
// installer's own flags). Values of flags named in paths are made
// absolute, since a service does not start in the installer's directory.
// Repeatable flags (cli.StringList) give one argument per value; a set
// boolean flag is --name (or --name=false).
func CommandLine(fs *flag.FlagSet, base []Arg, skip, paths []string) ([]string, error) {
	set := map[string]*flag.Flag{}
	var names []string
	fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(skip, f.Name) {
			set[f.Name] = f
			names = append(names, f.Name)
		}
	})
	var args []string
	add := func(name, value string) error {
		if slices.Contains(paths, name) && value != "" {
			abs, err := filepath.Abs(value)
			if err != nil {
				return err
			}
			value = abs
		}
		args = append(args, "--"+name, value)
		return nil
	}
	emit := func(f *flag.Flag) error {
		if list, ok := f.Value.(*cli.StringList); ok {
			for _, v := range *list {
				if err := add(f.Name, v); err != nil {
					return err
				}
			}
			return nil
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if v := f.Value.String(); v == "true" {
				args = append(args, "--"+f.Name)
			} else {
				args = append(args, "--"+f.Name+"="+v)
			}
			return nil
		}
		return add(f.Name, f.Value.String())
	}
	for _, b := range base {
		if f, ok := set[b.Name]; ok {
			if err := emit(f); err != nil {
				return nil, err
			}
			continue
		}
		if b.Value == "" {
			continue
		}
		if err := add(b.Name, b.Value); err != nil {
			return nil, err
		}
	}
	for _, name := range names { // Visit walks in lexical order
		if slices.ContainsFunc(base, func(b Arg) bool { return b.Name == name }) {
			continue
		}
		if err := emit(set[name]); err != nil {
			return nil, err
		}
	}
	return args, nil
}
