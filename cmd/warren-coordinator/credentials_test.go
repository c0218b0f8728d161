package main

import (
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/login/credential"
)

func TestCredentialsCLI(t *testing.T) {
	dir := startCoordinator(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "root@example.com", "--admin", sd)

	pwFile := filepath.Join(t.TempDir(), "pw")
	const password = "correct horse battery staple"
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "users", "passwd", "root@example.com", "--password-file", pwFile, sd)
	if !strings.Contains(out, "set") || strings.Contains(out, password) {
		t.Fatalf("passwd printed %q", out)
	}
	out = mustCLI(t, "users", "totp", "root@example.com", sd)
	secret := ""
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret: "); ok {
			secret = s
		}
	}
	if secret == "" || !strings.Contains(out, "otpauth://totp/") {
		t.Fatalf("totp printed:\n%s", out)
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil || !credential.CheckTOTP(secret, code, time.Now()) {
		t.Fatalf("the printed secret does not make valid codes: %v", err)
	}

	var users []api.User
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "list", "--json", sd)), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || !users[0].Password || !users[0].TOTP || users[0].LastMFA != nil {
		t.Fatalf("users = %+v", users)
	}
	if table := mustCLI(t, "users", "list", sd); !strings.Contains(table, "password+totp") {
		t.Fatalf("table:\n%s", table)
	}
	audit := mustCLI(t, "audit", sd)
	if !strings.Contains(audit, "user.password") || !strings.Contains(audit, "user.totp-enroll") ||
		strings.Contains(audit, password) || strings.Contains(audit, secret) {
		t.Fatalf("audit:\n%s", audit)
	}

	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "users", "passwd", "root@example.com", "--password-file", short, sd); err == nil ||
		!strings.Contains(err.Error(), "too short") {
		t.Fatalf("short password: %v", err)
	}
	if _, err := runCLI(t, "users", "passwd", "nobody", "--password-file", pwFile, sd); err == nil {
		t.Fatal("passwd for an unknown user succeeded")
	}
}

func TestLoginFlags(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(" s3cret \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (loginFlags, error) {
		var f loginFlags
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		return f, fs.Parse(args)
	}
	f, err := parse("--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "warren",
		"--oidc-client-secret-file", secret, "--oidc-allowed-domains", "Example.com, @corp.example",
		"--oidc-required-claim", "hd=example.com", "--oidc-mfa-acr", "phr", "--local-login")
	if err != nil {
		t.Fatal(err)
	}
	lc, err := f.config("https://warren.example.com")
	if err != nil {
		t.Fatal(err)
	}
	o := lc.OIDC
	if o == nil || o.ClientSecret != "s3cret" || strings.Join(o.AllowedDomains, " ") != "example.com corp.example" ||
		o.RequiredClaims["hd"] != "example.com" || o.MFAACRs[0] != "phr" || !lc.Local || lc.PublicURL != "https://warren.example.com" {
		t.Fatalf("config = %+v, OIDC %+v", lc, o)
	}
	if o.RecheckDisableAfter != 2 || o.RecheckAlertAfter != time.Hour {
		t.Fatalf("recheck defaults: disable after %d, alert after %v", o.RecheckDisableAfter, o.RecheckAlertAfter)
	}
	f, err = parse("--oidc-issuer", "https://idp", "--oidc-client-id", "x",
		"--oidc-recheck-fail-closed-after", "1", "--oidc-recheck-alert-after", "10m")
	if lc, cerr := f.config("https://w"); err != nil || cerr != nil || lc.OIDC.RecheckDisableAfter != 1 || lc.OIDC.RecheckAlertAfter != 10*time.Minute {
		t.Fatalf("recheck flags: %+v, %v, %v", lc.OIDC, err, cerr)
	}
	for _, bad := range [][]string{
		{"--oidc-issuer", "https://idp", "--oidc-client-id", "x", "--oidc-recheck-fail-closed-after", "0"},
		{"--oidc-issuer", "https://idp", "--oidc-client-id", "x", "--oidc-recheck-alert-after", "0s"},
		{"--oidc-client-id", "x"},
		{"--oidc-issuer", "https://idp"},
		{"--oidc-issuer", "https://idp", "--oidc-client-id", "x", "--oidc-required-claim", "nokv"},
		{"--oidc-issuer", "https://idp", "--oidc-client-id", "x", "--oidc-client-secret-file", "/nonexistent"},
	} {
		f, err := parse(bad...)
		if err == nil {
			_, err = f.config("https://w")
		}
		if err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
