//go:build !linux

package api

import (
	"errors"
	"net"
)

// peerCred fails where SO_PEERCRED does not exist: the server then serves
// nobody.
func peerCred(net.Conn) (uid, pid uint32, err error) {
	return 0, 0, errors.New("peer credentials: SO_PEERCRED is Linux-only")
}
