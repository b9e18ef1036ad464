package config

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// hashVersion starts the hashed bytes; change it when the canonical form
// changes on purpose.
const hashVersion = "vigil-config-v1\n"

// canonical is the form of a configuration that is hashed: everything
// decoded, with defaults applied and each resource and monitor as every
// server sees it, but not the key and not where the file was.
type canonical struct {
	Cluster  Cluster
	Servers  []Server
	Lanes    []Lane
	Groups   []canonicalGroup
	Monitors []canonicalMonitor
}

type canonicalGroup struct {
	Name      string
	Servers   []string
	Resources []canonicalResource
}

type canonicalResource struct {
	Common    *Resource
	PerServer map[string]*Resource
}

type canonicalMonitor struct {
	Common    *Monitor
	PerServer map[string]*Monitor
}

// hash returns the SHA-256 of c's canonical form. JSON writes struct fields
// in declaration order and map keys sorted, so the encoding does not depend
// on the file's key order, comments or white space.
func hash(c *Config) ([32]byte, error) {
	k := canonical{Cluster: c.Cluster, Servers: c.Servers, Lanes: c.Lanes}
	for _, g := range c.Groups {
		cg := canonicalGroup{Name: g.Name, Servers: g.Servers}
		for i := range g.Resources {
			r := &g.Resources[i]
			cr := canonicalResource{Common: r, PerServer: map[string]*Resource{}}
			for _, s := range c.Servers {
				cr.PerServer[s.Name] = r.For(s.Name)
			}
			cg.Resources = append(cg.Resources, cr)
		}
		k.Groups = append(k.Groups, cg)
	}
	for i := range c.Monitors {
		m := &c.Monitors[i]
		cm := canonicalMonitor{Common: m, PerServer: map[string]*Monitor{}}
		for _, s := range c.Servers {
			cm.PerServer[s.Name] = m.For(s.Name)
		}
		k.Monitors = append(k.Monitors, cm)
	}
	data, err := json.Marshal(k)
	if err != nil {
		return [32]byte{}, fmt.Errorf("hash: %w", err)
	}
	return sha256.Sum256(append([]byte(hashVersion), data...)), nil
}
