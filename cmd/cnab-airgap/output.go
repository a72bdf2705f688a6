package main

// The JSON documents written to standard output with --output json are
// described field by field in docs/OUTPUT.md; TestJSONFieldsDocumented
// fails when a command writes a field that document does not list.

// errorOutput is the JSON document written when a command fails with
// --output json (unless the command already wrote its own result, as a
// failed relocation audit does).
type errorOutput struct {
	// Error is the message also printed to standard error.
	Error string `json:"error"`
	// ExitCode is the process exit code (1 failure, 2 usage, 3 verification).
	ExitCode int `json:"exitCode"`
	// Hint says what to do about a registry failure (a CA to give, a
	// plain-HTTP host to name, credentials), as printed after "hint:".
	Hint string `json:"hint,omitempty"`
}
