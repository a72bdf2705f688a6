package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// countingReader counts the reads that returned data.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.reads++
	}
	return n, err
}

// withFlags runs fn with a cli.Context holding the global flags of args.
func withFlags(t *testing.T, args []string, fn func(*cli.Context) error) error {
	t.Helper()
	app := &cli.App{Flags: globalFlags(), Action: fn, Writer: io.Discard, ErrWriter: io.Discard}
	return app.Run(append([]string{"cnab-airgap"}, args...))
}

// --password-stdin is read once and serves the Notary server (any host)
// and the registry client.
func TestNotaryCredentialsPasswordStdin(t *testing.T) {
	in := &countingReader{r: strings.NewReader("hunter2-notary\n")}
	e := &env{stdin: in, stdout: io.Discard, stderr: io.Discard}
	err := withFlags(t, []string{"--username", "bob", "--password-stdin"}, func(c *cli.Context) error {
		f, err := notaryCredentialFunc(c, e)
		if err != nil {
			return err
		}
		for _, h := range []string{"notary.example:4443", "registry.example"} {
			u, p, err := f(context.Background(), h)
			if err != nil || u != "bob" || p != "hunter2-notary" {
				t.Fatalf("credentials for %s: %q %q %v", h, u, p, err)
			}
		}
		if _, err := client(c, e, "registry.example"); err != nil {
			return err
		}
		if e.login == nil || e.login.password != "hunter2-notary" {
			t.Fatalf("the registry client did not reuse the password: %+v", e.login)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.reads != 1 {
		t.Fatalf("standard input read %d times, want once", in.reads)
	}
	if got := redact("token service said hunter2-notary"); strings.Contains(got, "hunter2-notary") {
		t.Fatalf("the password is not redacted: %s", got)
	}
	// --username alone is a usage error, as for registries.
	err = withFlags(t, []string{"--username", "bob"}, func(c *cli.Context) error {
		_, err := notaryCredentials(c, &env{stdin: strings.NewReader("")})
		return err
	})
	if _, ok := err.(usageError); !ok {
		t.Fatalf("--username without --password-stdin: %v", err)
	}
}

// Without flags, the docker config answers per host; a host it does not
// know gets anonymous.
func TestNotaryCredentialsDockerConfig(t *testing.T) {
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("carol:from-config"))
	raw, _ := json.Marshal(map[string]any{"auths": map[string]any{"127.0.0.1:5000": map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	err := withFlags(t, nil, func(c *cli.Context) error {
		f, err := notaryCredentialFunc(c, e)
		if err != nil {
			return err
		}
		if u, p, err := f(context.Background(), "127.0.0.1:5000"); err != nil || u != "carol" || p != "from-config" {
			t.Fatalf("configured host: %q %q %v", u, p, err)
		}
		if u, p, err := f(context.Background(), "127.0.0.1:4443"); err != nil || u != "" || p != "" {
			t.Fatalf("unknown host: %q %q %v", u, p, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
