package peercred

import (
	"errors"
	"net"
	"runtime"

	"golang.org/x/sys/windows"
)

var osAdmins = WindowsAdmins

func selfUser() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", err
	}
	return u.User.Sid.String(), nil
}

// procImpersonateNamedPipeClient is advapi32's ImpersonateNamedPipeClient,
// which golang.org/x/sys/windows does not wrap.
var procImpersonateNamedPipeClient = windows.NewLazySystemDLL("advapi32.dll").NewProc("ImpersonateNamedPipeClient")

// of reads the token of the client of a named pipe (the server end, as
// go-winio's listener returns it): it impersonates the client on a locked
// OS thread just long enough to open the thread's token, then reverts. The
// client must connect at SECURITY_IDENTIFICATION or above (warren does);
// an anonymous client has no token to read and is denied. It never falls
// back to the client's process ID: that process may have exited and the
// ID been reused by the time it is looked up.
func of(c net.Conn) (Cred, bool) {
	fc, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return Cred{}, false
	}
	h := windows.Handle(fc.Fd())
	var cred Cred
	var pid uint32
	if windows.GetNamedPipeClientProcessId(h, &pid) == nil {
		cred.PID = int32(pid)
	}
	tok, err := clientToken(h)
	if err != nil {
		return Cred{}, false
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return Cred{}, false
	}
	cred.User = u.User.Sid.String()
	gs, err := tok.GetTokenGroups()
	if err != nil {
		return Cred{}, false
	}
	for _, g := range gs.AllGroups() {
		if g.Attributes&windows.SE_GROUP_ENABLED == 0 || g.Attributes&windows.SE_GROUP_USE_FOR_DENY_ONLY != 0 {
			continue
		}
		cred.Groups = append(cred.Groups, g.Sid.String())
	}
	return cred, true
}

// clientToken returns the pipe client's token. The impersonation runs on
// its own goroutine locked to its OS thread; should reverting fail, the
// goroutine exits still locked, so Go ends that thread instead of reusing
// it with the client's identity.
func clientToken(pipe windows.Handle) (windows.Token, error) {
	type result struct {
		tok windows.Token
		err error
	}
	done := make(chan result, 1)
	go func() { // ends before clientToken returns
		runtime.LockOSThread()
		if r1, _, err := procImpersonateNamedPipeClient.Call(uintptr(pipe)); r1 == 0 {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		var tok windows.Token
		err := windows.OpenThreadToken(windows.CurrentThread(), windows.TOKEN_QUERY, true, &tok)
		if rerr := windows.RevertToSelf(); rerr != nil {
			if err == nil {
				tok.Close()
			}
			done <- result{err: errors.Join(errors.New("peercred: revert impersonation"), rerr)}
			return // still locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		done <- result{tok: tok, err: err}
	}()
	r := <-done
	return r.tok, r.err
}
