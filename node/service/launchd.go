package service

import (
	"encoding/xml"
	"path"
	"strings"
)

// LaunchdDir is where install-service writes the property list by
// default.
const LaunchdDir = "/Library/LaunchDaemons"

// LaunchdLabel is the launchd label of c's daemon.
func LaunchdLabel(c Config) string { return "com.warrenmesh." + c.Name }

// LaunchdPlist returns the property list of c as a launchd daemon: run
// at boot as root, restarted when it exits, its output in
// /var/log/<name>.log.
func LaunchdPlist(c Config) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
`)
	key := func(k string) { b.WriteString("\t<key>" + k + "</key>\n") }
	str := func(indent, s string) {
		b.WriteString(indent + "<string>")
		_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
		b.WriteString("</string>\n")
	}
	key("Label")
	str("\t", LaunchdLabel(c))
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	str("\t\t", c.Executable)
	for _, a := range c.Args {
		str("\t\t", a)
	}
	b.WriteString("\t</array>\n")
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<true/>\n")
	key("StandardOutPath")
	str("\t", "/var/log/"+c.Name+".log")
	key("StandardErrorPath")
	str("\t", "/var/log/"+c.Name+".log")
	b.WriteString("</dict>\n</plist>\n")
	return []byte(b.String())
}

// LaunchdInstall is the plan that installs c as a launchd daemon and
// starts it (a daemon installed before is stopped and replaced).
func LaunchdInstall(c Config) (Plan, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	plist := path.Join(dirOr(c.Dir, LaunchdDir), LaunchdLabel(c)+".plist")
	var p Plan
	if c.Group != "" {
		// dseditgroup fails for a group that exists, so look first.
		p = append(p, Step{Cmd: []string{"/bin/sh", "-c",
			`dscl . -read "/Groups/$1" >/dev/null 2>&1 || dseditgroup -o create -r "Warren local API" "$1"`, "sh", c.Group}})
	}
	return append(p,
		Step{Cmd: []string{"launchctl", "bootout", "system/" + LaunchdLabel(c)}, MayFail: true},
		Step{Write: &File{Path: plist, Data: LaunchdPlist(c), Mode: 0o644}},
		Step{Cmd: []string{"launchctl", "bootstrap", "system", plist}},
	), nil
}

// LaunchdUninstall is the plan that stops c's daemon and removes its
// property list. It keeps the state directory and the group.
func LaunchdUninstall(c Config) (Plan, error) {
	if err := c.checkName(); err != nil {
		return nil, err
	}
	return Plan{
		{Cmd: []string{"launchctl", "bootout", "system/" + LaunchdLabel(c)}, MayFail: true},
		{Remove: path.Join(dirOr(c.Dir, LaunchdDir), LaunchdLabel(c)+".plist")},
	}, nil
}
