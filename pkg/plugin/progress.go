package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	infraopsv1 "github.com/michael/k8s-cloud-node-manager/pkg/apis/infraops/v1"
)

// Event is one line of -o json during a rollout, drain or chaos run: one
// JSON object per line, written as it happens, so a script can follow a
// run that takes minutes (as kubectl get -w -o json streams objects).
type Event struct {
	Time time.Time `json:"time"`
	// Type is one of Picked, Cordoned, Evicting, Evicted, Drained,
	// Retrying, Requested, Waiting, Back, Uncordoned, LeftCordoned,
	// Failed, Summary.
	Type    string `json:"type"`
	Node    string `json:"node,omitempty"`
	Round   int    `json:"round,omitempty"`
	Pod     string `json:"pod,omitempty"`
	Message string `json:"message,omitempty"`
	// RetryAfterSeconds is the wait before the next try (Retrying).
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// NodeAction is the server's answer (Requested).
	NodeAction *infraopsv1.NodeAction `json:"nodeAction,omitempty"`
	// Nodes and Seed are the pick of a round (Picked).
	Nodes []string `json:"nodes,omitempty"`
	Seed  *uint64  `json:"seed,omitempty"`
	// Done, Failed and Skipped count the nodes (Summary).
	Done    *int `json:"done,omitempty"`
	Failed  *int `json:"failed,omitempty"`
	Skipped *int `json:"skipped,omitempty"`
}

// Event types.
const (
	EventPicked       = "Picked"
	EventCordoned     = "Cordoned"
	EventEvicting     = "Evicting"
	EventEvicted      = "Evicted"
	EventDrained      = "Drained"
	EventRetrying     = "Retrying"
	EventRequested    = "Requested"
	EventWaiting      = "Waiting"
	EventBack         = "Back"
	EventUncordoned   = "Uncordoned"
	EventLeftCordoned = "LeftCordoned"
	EventFailed       = "Failed"
	EventSummary      = "Summary"
)

// reporter writes everything a run prints. On a terminal, the states of
// the nodes in flight share one line of ErrOut that is rewritten as they
// change; every other line is written above it. Elsewhere each state is a
// line of its own. With events, -o json lines go to Out.
type reporter struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	now    func() time.Time
	// width is the terminal's width when ErrOut is one, else 0.
	width  int
	events bool

	status map[string]string
	order  []string
	shown  bool
}

// terminalWidth is ErrOut's width when it is a terminal.
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	return width, true
}

// event writes e as a JSON line when -o json streams events.
func (p *reporter) event(e Event) {
	if !p.events {
		return
	}
	if e.Time.IsZero() {
		e.Time = p.now().UTC()
	}
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.out, "%s\n", data)
	p.drawLocked()
}

// outLine is a line of Out, the lines of the default output.
func (p *reporter) outLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(p.out, line)
	p.drawLocked()
}

// errLine is a line of ErrOut that stays.
func (p *reporter) errLine(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(p.errOut, line)
	p.drawLocked()
}

// setStatus is where a node is at while it is waited for: the terminal's
// status line, else a line of ErrOut.
func (p *reporter) setStatus(node, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width == 0 {
		fmt.Fprintln(p.errOut, line)
		return
	}
	if _, ok := p.status[node]; !ok {
		p.order = append(p.order, node)
	}
	if p.status == nil {
		p.status = map[string]string{}
	}
	p.status[node] = line
	p.clearLocked()
	p.drawLocked()
}

// clearStatus removes a node from the status line.
func (p *reporter) clearStatus(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.status[node]; !ok {
		return
	}
	delete(p.status, node)
	p.order = slices.DeleteFunc(p.order, func(n string) bool { return n == node })
	p.clearLocked()
	p.drawLocked()
}

func (p *reporter) clearLocked() {
	if p.shown {
		io.WriteString(p.errOut, "\r\x1b[K")
		p.shown = false
	}
}

// drawLocked writes the status line, cut to the terminal's width: a
// line that wraps could not be rewritten in place.
func (p *reporter) drawLocked() {
	if p.width == 0 || len(p.order) == 0 {
		return
	}
	parts := make([]string, len(p.order))
	for i, n := range p.order {
		parts[i] = p.status[n]
	}
	line := strings.Join(parts, " | ")
	if r := []rune(line); len(r) > p.width-1 {
		line = string(r[:max(p.width-2, 0)]) + "…"
	}
	io.WriteString(p.errOut, line)
	p.shown = true
}

// done ends the status line.
func (p *reporter) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	p.status, p.order = nil, nil
}

func intp(i int) *int { return &i }
