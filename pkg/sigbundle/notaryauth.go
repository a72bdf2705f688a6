package sigbundle

import "context"

// CredentialFunc returns the username and password to present to a Notary
// server (or its token service) for host. Empty strings mean anonymous.
type CredentialFunc func(ctx context.Context, host string) (username, password string, err error)
