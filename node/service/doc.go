// Package service installs warrend as the operating system's service and
// runs it under the Windows service manager: a systemd unit on Linux, a
// launchd daemon on macOS, a Windows service (with its log in the event
// log) on Windows.
//
// What to install is decided by pure functions shared by every OS (the
// unit file, the property list, the command line carried into the
// service, the ordered steps of a Plan), so it is tested on any OS; the
// per-OS files only pick the plan and, on Windows, call the service
// manager.
//
// It must never touch anything but the service's own definition, the
// group named for the local API and the service manager's state: not the
// node's state directory, not its keys, and it never starts the daemon's
// work in its own process.
package service
