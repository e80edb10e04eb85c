package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
)

// Ports come from below the kernel's ephemeral range (32768–60999 on
// Linux): a port picked there can be taken by any outgoing connection
// between our check and the child's bind. The floor keeps clear of the
// well-known and commonly configured low ports.
const (
	portMin = 10000
	portMax = 32767
)

var (
	portsMu sync.Mutex
	// handedOut keeps two clusters in one test binary from being given the
	// same port between the check and the child's bind.
	handedOut = map[int]bool{}
)

// freePort returns a loopback TCP port below 32768 that nothing listened
// on a moment ago. Callers must still retry when the child fails to bind.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := portMin + rand.IntN(portMax-portMin+1)
		if handedOut[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		handedOut[p] = true
		return p, nil
	}
	return 0, errors.New("no free loopback port found below 32768")
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// bindFailed reports whether a child's log says it lost a port race.
func bindFailed(log string) bool {
	return strings.Contains(log, "address already in use")
}

// attempts is how often a start that lost a port race is retried with
// fresh ports.
const attempts = 5

func errPortRace(name string) error {
	return fmt.Errorf("%s: a port was taken between picking and binding", name)
}
