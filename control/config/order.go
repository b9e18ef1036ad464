package config

import (
	"fmt"
	"strings"
)

// StartOrder returns g's resources in the order the group manager starts
// them: every resource after the resources it depends on, and otherwise in
// declaration order (at each step, the first declared resource whose
// dependencies are all started). Stop order is the reverse. It fails on a
// dependency outside g and on a dependency cycle.
func StartOrder(g *Group) ([]*Resource, error) {
	idx := make(map[string]int, len(g.Resources))
	for i := range g.Resources {
		idx[g.Resources[i].Name] = i
	}
	for i := range g.Resources {
		for _, dep := range g.Resources[i].DependsOn {
			if _, ok := idx[dep]; !ok {
				return nil, fmt.Errorf("group %s: resource %s depends on %q, which is not in the group", g.Name, g.Resources[i].Name, dep)
			}
		}
	}
	order, _ := topoSort(g, idx, nil)
	if len(order) < len(g.Resources) {
		cyc := findCycles(g, idx)
		return nil, fmt.Errorf("group %s: dependency cycle: %s", g.Name, cycleString(g, cyc[0]))
	}
	out := make([]*Resource, len(order))
	for i, r := range order {
		out[i] = &g.Resources[r]
	}
	return out, nil
}

// topoSort places the resources of g whose dependencies can be satisfied,
// earliest declared first; dependencies idx does not know are ignored, and
// resources marked in done count as already placed. It returns the placed
// indexes in order and the mask of placed resources.
func topoSort(g *Group, idx map[string]int, done []bool) ([]int, []bool) {
	n := len(g.Resources)
	placed := make([]bool, n)
	copy(placed, done)
	var order []int
	for {
		next := -1
		for i := 0; i < n && next < 0; i++ {
			if placed[i] {
				continue
			}
			ready := true
			for _, dep := range g.Resources[i].DependsOn {
				if j, ok := idx[dep]; ok && !placed[j] {
					ready = false
					break
				}
			}
			if ready {
				next = i
			}
		}
		if next < 0 {
			return order, placed
		}
		placed[next] = true
		order = append(order, next)
	}
}

// findCycles returns the dependency cycles of g, each as resource indexes
// starting with its earliest declared member, the first cycle first.
// Resources that only depend on a cycle are not part of it.
func findCycles(g *Group, idx map[string]int) [][]int {
	var cycles [][]int
	var removed []bool
	for {
		_, placed := topoSort(g, idx, removed)
		start := -1
		for i, p := range placed {
			if !p {
				start = i
				break
			}
		}
		if start < 0 {
			return cycles
		}
		// Every unplaced resource has an unplaced dependency: walk them
		// until one repeats.
		pos := map[int]int{}
		var walk []int
		cur := start
		for {
			if at, seen := pos[cur]; seen {
				cyc := walk[at:]
				first := 0
				for k := range cyc {
					if cyc[k] < cyc[first] {
						first = k
					}
				}
				cyc = append(append([]int(nil), cyc[first:]...), cyc[:first]...)
				cycles = append(cycles, cyc)
				if removed == nil {
					removed = make([]bool, len(g.Resources))
				}
				for _, k := range cyc {
					removed[k] = true
				}
				break
			}
			pos[cur] = len(walk)
			walk = append(walk, cur)
			next := -1
			for _, dep := range g.Resources[cur].DependsOn {
				if j, ok := idx[dep]; ok && !placed[j] {
					next = j
					break
				}
			}
			if next < 0 { // cannot happen; be safe rather than loop
				return cycles
			}
			cur = next
		}
	}
}

// cycleString formats a cycle as "a -> b -> a".
func cycleString(g *Group, cyc []int) string {
	names := make([]string, 0, len(cyc)+1)
	for _, i := range cyc {
		names = append(names, g.Resources[i].Name)
	}
	names = append(names, g.Resources[cyc[0]].Name)
	return strings.Join(names, " -> ")
}
