package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxAuthKeyFile bounds what readAuthKey reads; a pre-auth key is under
// 100 bytes.
const maxAuthKeyFile = 4096

// readAuthKey returns the pre-auth key from --auth-key (a key, or - for
// stdin) or --auth-key-file (a path, or - for stdin); empty when neither is
// given. A key on the command line is visible to every local user (ps,
// /proc/PID/cmdline); a file or stdin is not.
func readAuthKey(flagKey, file string, stdin io.Reader) (string, error) {
	switch {
	case flagKey != "" && file != "":
		return "", errors.New("give --auth-key or --auth-key-file, not both")
	case flagKey == "-":
		return readKeyFrom("stdin", stdin)
	case flagKey != "":
		return flagKey, nil
	case file == "-":
		return readKeyFrom("stdin", stdin)
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--auth-key-file: %w", err)
		}
		defer f.Close()
		return readKeyFrom(file, f)
	}
	return "", nil
}

// readKeyFrom reads one key from r: a single line, surrounding white space
// (and the final newline) ignored.
func readKeyFrom(name string, r io.Reader) (string, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxAuthKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("read the pre-auth key from %s: %w", name, err)
	}
	if len(b) > maxAuthKeyFile {
		return "", fmt.Errorf("the pre-auth key in %s is too long (over %d bytes): is it the right file?", name, maxAuthKeyFile)
	}
	key := strings.TrimSpace(string(b))
	switch {
	case key == "":
		return "", fmt.Errorf("the pre-auth key in %s is empty", name)
	case strings.ContainsAny(key, "\r\n"):
		return "", fmt.Errorf("%s holds more than one line: want one line with the pre-auth key", name)
	}
	return key, nil
}
