package config

import (
	"strings"
	"testing"
)

func group(deps ...string) *Group {
	// deps are "name:dep1,dep2" in declaration order.
	g := &Group{Name: "g"}
	for _, d := range deps {
		name, list, _ := strings.Cut(d, ":")
		r := Resource{Name: name, Type: KindExec}
		if list != "" {
			r.DependsOn = strings.Split(list, ",")
		}
		g.Resources = append(g.Resources, r)
	}
	return g
}

func TestStartOrder(t *testing.T) {
	tests := []struct {
		name string
		g    *Group
		want string // names in start order, or the error
	}{
		{"empty", group(), ""},
		{"declaration order", group("a", "b", "c"), "a b c"},
		{"dependencies first", group("vip:md", "md"), "md vip"},
		{"stable", group("app:md,vip", "md", "vip:md", "log"), "md vip app log"},
		{"diamond", group("d:b,c", "c:a", "b:a", "a"), "a c b d"},
		{"cycle", group("a:c", "b:a", "c:b"), "group g: dependency cycle: a -> c -> b -> a"},
		{"self", group("a", "b:b"), "group g: dependency cycle: b -> b"},
		{"outside the group", group("a:x"), `group g: resource a depends on "x", which is not in the group`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order, err := StartOrder(tt.g)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				names := make([]string, len(order))
				for i, r := range order {
					names[i] = r.Name
					if r != &tt.g.Resources[indexOf(tt.g, r.Name)] {
						t.Errorf("%s is not a pointer into the group", r.Name)
					}
				}
				got = strings.Join(names, " ")
			}
			if got != tt.want {
				t.Errorf("StartOrder = %q, want %q", got, tt.want)
			}
		})
	}
}

func indexOf(g *Group, name string) int {
	for i := range g.Resources {
		if g.Resources[i].Name == name {
			return i
		}
	}
	return -1
}
