package progress_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/cnab-airgap/cnab-airgap/pkg/progress"
)

// An Item counts a transfer once even when it is retried: the second
// attempt reports only the bytes beyond what the first one reached.
func ExampleItem() {
	var total int64
	f := progress.Func(func(e progress.Event) {
		if e.State == progress.StateActive {
			total += e.Bytes
		}
	})
	item := &progress.Item{F: f, Phase: progress.PhaseBlobs, Name: "sha256:abc"}
	content := strings.Repeat("x", 1000)

	// The first attempt breaks off after 600 bytes...
	io.CopyN(io.Discard, item.Reader(strings.NewReader(content)), 600)
	fmt.Println("after the first attempt:", total)
	// ...the retry reads everything from the start.
	io.Copy(io.Discard, item.Reader(strings.NewReader(content)))
	fmt.Println("after the retry:", total)
	// Output:
	// after the first attempt: 600
	// after the retry: 1000
}
