package plugin

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// picker draws the nodes of each chaos round. The same seed over the same
// nodes draws the same picks, round after round, so an experiment can be
// replayed: the candidates are sorted by name before each draw, and the
// generator is PCG, whose sequence Go keeps stable across releases.
type picker struct {
	seed uint64
	rng  *rand.Rand
}

func newPicker(seed uint64) *picker {
	return &picker{seed: seed, rng: rand.New(rand.NewPCG(seed, 0x6b756265637461))}
}

// pick draws n targets of the candidates, in name order. It refuses an
// empty candidate list and more nodes than there are.
func (p *picker) pick(candidates []target, n int, selector string) ([]target, error) {
	if len(candidates) == 0 {
		return nil, fmt.Errorf("--random %d: the selector %q matches no nodes", n, selector)
	}
	if n > len(candidates) {
		return nil, fmt.Errorf("--random %d: the selector %q matches only %d nodes (%s)", n, selector, len(candidates), strings.Join(targetNames(candidates), ", "))
	}
	sorted := slices.Clone(candidates)
	slices.SortFunc(sorted, func(a, b target) int { return strings.Compare(a.Name, b.Name) })
	perm := p.rng.Perm(len(sorted))
	out := make([]target, n)
	for i := range n {
		out[i] = sorted[perm[i]]
	}
	slices.SortFunc(out, func(a, b target) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func targetNames(ts []target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// drawSeed is the seed of a run without --seed.
func drawSeed() uint64 { return rand.Uint64() >> 11 }
