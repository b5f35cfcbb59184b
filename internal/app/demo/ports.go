package demo

import (
	"errors"
	"syscall"
)

// isAddrInUse reports whether err is a listen failure because the address
// is taken.
func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE)
}
