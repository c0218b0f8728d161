//go:build windows

package sshserver

import (
	"errors"
	"io"
)

var errUnsupported = errors.New("sshserver: warrend --ssh is not supported on Windows (it runs on Linux and macOS)")

func platformSupported() error { return errUnsupported }

func lookupAccount(string, bool) (*account, error) { return nil, errUnsupported }

type procSpec struct {
	acct     *account
	switchTo bool
	command  string
	env      []string
	pty      *ptyReq
}

type process struct {
	stdin          io.WriteCloser
	stdout, stderr io.Reader
}

func startProcess(procSpec) (*process, error) { return nil, errUnsupported }
func (*process) resize(int, int)              {}
func (*process) kill()                        {}
func (*process) wait() int                    { return -1 }
func defaultPath(uint32) string               { return "" }
