package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync/atomic"
)

// RSA-2048 key generation dominates Start (tens to hundreds of milliseconds on
// a small machine; everything else takes about a millisecond). Start therefore
// takes a key generated in the background after the previous Start, when one
// is ready. Every key is used by exactly one IdP; keys are never shared.
var (
	spareKey  = make(chan *rsa.PrivateKey, 1)
	refilling atomic.Bool
)

func newSigningKey() (*rsa.PrivateKey, error) {
	var k *rsa.PrivateKey
	select {
	case k = <-spareKey:
	default:
	}
	refillSpareKey()
	if k != nil {
		return k, nil
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generating signing key: %w", err)
	}
	return k, nil
}

func refillSpareKey() {
	if !refilling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer refilling.Store(false)
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return // the next Start generates its key inline
		}
		select {
		case spareKey <- k:
		default:
		}
	}()
}
