package config

// ServerIndex returns the position of the named server in c.Servers, or -1.
func (c *Config) ServerIndex(name string) int {
	for i := range c.Servers {
		if c.Servers[i].Name == name {
			return i
		}
	}
	return -1
}

// Server returns the named server, or nil.
func (c *Config) Server(name string) *Server {
	if i := c.ServerIndex(name); i >= 0 {
		return &c.Servers[i]
	}
	return nil
}

// LaneByName returns the named lane, or nil.
func (c *Config) LaneByName(name string) *Lane {
	for i := range c.Lanes {
		if c.Lanes[i].Name == name {
			return &c.Lanes[i]
		}
	}
	return nil
}

// Group returns the named group, or nil.
func (c *Config) Group(name string) *Group {
	for i := range c.Groups {
		if c.Groups[i].Name == name {
			return &c.Groups[i]
		}
	}
	return nil
}

// Resource returns the named resource and the group that holds it, or nil,
// nil. Resource names are unique across all groups.
func (c *Config) Resource(name string) (*Group, *Resource) {
	for i := range c.Groups {
		g := &c.Groups[i]
		for j := range g.Resources {
			if g.Resources[j].Name == name {
				return g, &g.Resources[j]
			}
		}
	}
	return nil, nil
}

// Monitor returns the named monitor, or nil.
func (c *Config) Monitor(name string) *Monitor {
	for i := range c.Monitors {
		if c.Monitors[i].Name == name {
			return &c.Monitors[i]
		}
	}
	return nil
}

// MetricsAddressFor returns the address the named server serves /metrics
// on: its own metrics_address if set, else the cluster's; empty means none.
func (c *Config) MetricsAddressFor(server string) string {
	if s := c.Server(server); s != nil && s.MetricsAddress != "" {
		return s.MetricsAddress
	}
	return c.Cluster.MetricsAddress
}

// GroupServers returns the servers that may run g, highest priority first:
// g.Servers, or every server in configuration order when g.Servers is empty.
// The slice is a copy.
func (c *Config) GroupServers(g *Group) []string {
	if len(g.Servers) > 0 {
		return append([]string(nil), g.Servers...)
	}
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.Name
	}
	return out
}
