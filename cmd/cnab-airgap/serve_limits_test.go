package main

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
)

// The connection-limit flags refuse values that would remove the bound
// (exit 2), before anything is bound or read.
func TestServeCommandLimitFlags(t *testing.T) {
	archive := writeFixture(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--max-connections", "0"}, "--max-connections must be at least 1"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout must be positive"},
		{[]string{"--write-timeout", "-1s"}, "--write-timeout must be positive"},
	} {
		r := runCLI(t, append([]string{"serve", archive, "--addr", "127.0.0.1:0"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d\n%s", tc.args, r.code, r.stderr)
		}
	}
}

// A busy address is reported at once (exit 1, naming the address), before
// the archive is verified: no verification progress is printed.
func TestServeCommandAddressInUse(t *testing.T) {
	archive := writeFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	r := runCLI(t, "serve", archive, "--addr", addr)
	if r.code != exitFailure || !strings.Contains(r.stderr, "cannot listen on "+addr) || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("busy address: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "verify") {
		t.Fatalf("the archive was verified before the address was bound:\n%s", r.stderr)
	}
	r = runCLI(t, "serve", archive, "--addr", addr, "-O", "json")
	var e struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exitCode"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.ExitCode != exitFailure || !strings.Contains(e.Error, addr) {
		t.Fatalf("busy address, JSON: exit %d, %q (%v)", r.code, r.stdout, err)
	}
}
