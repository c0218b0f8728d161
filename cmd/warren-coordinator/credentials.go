package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// users passwd and users totp: local-login credentials for bootstrapping
// without an identity provider. The password is read from --password-file,
// from the terminal without echo (asked twice), or as the first line of a
// piped stdin; it is never taken from the command line, where other users
// of the machine could read it.

func usersPasswd(c *command, args []string) error {
	file := c.fs.String("password-file", "", "read the password from the first line of this file")
	if err := c.parse(args, 1, 1, "users passwd USER [--password-file F]"); err != nil {
		return err
	}
	id, err := c.userID(c.args[0])
	if err != nil {
		return err
	}
	password, err := readPassword(*file, c.out)
	if err != nil {
		return err
	}
	if err := c.c.SetPassword(c.ctx, id, password); err != nil {
		return err
	}
	result := struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}{c.args[0], "set"}
	return c.print(result, "USER\tPASSWORD", func(w io.Writer) { fmt.Fprintf(w, "%s\tset\n", c.args[0]) })
}

func usersTOTP(c *command, args []string) error {
	if err := c.parse(args, 1, 1, "users totp USER"); err != nil {
		return err
	}
	id, err := c.userID(c.args[0])
	if err != nil {
		return err
	}
	e, err := c.c.EnrollTOTP(c.ctx, id)
	if err != nil {
		return err
	}
	if c.af.json {
		return c.print(e, "", nil)
	}
	fmt.Fprintf(c.out, "TOTP enrolled for %s (any earlier authenticator entry no longer works).\n", c.args[0])
	fmt.Fprintf(c.out, "Add it to an authenticator app now; it is shown only once.\n")
	fmt.Fprintf(c.out, "  secret: %s\n  URL:    %s\n", e.Secret, e.URL)
	return nil
}

// readPassword gets a new password without it appearing on the command
// line or the screen.
func readPassword(file string, prompt io.Writer) (string, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		defer f.Close()
		return firstLine(f)
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return firstLine(os.Stdin)
	}
	fmt.Fprint(prompt, "New password: ")
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(prompt, "Again: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(first) != string(second) {
		return "", errors.New("the passwords do not match; nothing changed")
	}
	return string(first), nil
}

// firstLine reads one line (at most 4 KiB), without its line ending.
func firstLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given (pipe it in, use --password-file, or run in a terminal)")
	}
	return line, nil
}
