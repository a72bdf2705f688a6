package main

import "github.com/google/go-containerregistry/pkg/authn"

func basicAuth(user, pass string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
}
