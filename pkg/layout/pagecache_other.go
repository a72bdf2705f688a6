//go:build !linux

package layout

import "os"

// Page cache hints are Linux-only; elsewhere the kernel's defaults apply.

func startWriteback(*os.File, int64, int64)  {}
func finishWriteback(*os.File, int64, int64) {}
func dropCache(*os.File, int64, int64)       {}
