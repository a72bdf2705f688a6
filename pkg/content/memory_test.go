package content_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/cnab-airgap/cnab-airgap/pkg/content"
	"github.com/cnab-airgap/cnab-airgap/pkg/content/contenttest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	contenttest.Run(t, contenttest.Suite{New: func(t *testing.T, held, _ []contenttest.Blob) any {
		m := content.NewMemory()
		for _, b := range held {
			if err := m.Push(context.Background(), b.Desc, bytes.NewReader(b.Data)); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}})
}
