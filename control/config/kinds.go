package config

import (
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// kindSpec describes one resource or monitor kind: the struct its flat keys
// decode into, the pointer field of Resource or Monitor that holds it, and
// the keys that may be set individually per server.
type kindSpec struct {
	typ      reflect.Type
	field    string
	settable []string
}

// resourceKinds lists the resource kinds, in the order documented.
var resourceKinds = map[string]kindSpec{
	KindFloatingIP: {reflect.TypeFor[FloatingIP](), "FloatingIP", []string{"interface"}},
	KindExec:       {reflect.TypeFor[Exec](), "Exec", []string{"start", "stop"}},
	KindAWSVIP:     {reflect.TypeFor[AWSVIP](), "AWSVIP", []string{"vpc_id", "eni_id", "interface"}},
	KindAWSEIP:     {reflect.TypeFor[AWSEIP](), "AWSEIP", []string{"eni_id"}},
	KindAWSDNS:     {reflect.TypeFor[AWSDNS](), "AWSDNS", []string{"ip"}},
	KindMirrorDisk: {reflect.TypeFor[MirrorDisk](), "MirrorDisk", []string{"data_partition", "cluster_partition", "mount_point"}},
}

// monitorKinds lists the monitor kinds a configuration may hold.
var monitorKinds = map[string]kindSpec{
	MonitorIP:    {reflect.TypeFor[IPMonitor](), "IP", []string{"addresses"}},
	MonitorTCP:   {reflect.TypeFor[TCPMonitor](), "TCP", nil},
	MonitorExec:  {reflect.TypeFor[ExecMonitor](), "Exec", []string{"script"}},
	MonitorAWSAZ: {reflect.TypeFor[AWSAZMonitor](), "AWSAZ", []string{"availability_zone"}},
}

// automaticMonitors are the monitor kinds added with their resource.
var automaticMonitors = map[string]string{
	MonitorAWSVIP: KindAWSVIP,
	MonitorAWSEIP: KindAWSEIP,
	MonitorAWSDNS: KindAWSDNS,
	// The guides' mirror disk monitor (mdw).
	MonitorMirrorDisk: KindMirrorDisk,
}

// kindNames returns the sorted names of a kind table.
func kindNames(kinds map[string]kindSpec) []string {
	return slices.Sorted(maps.Keys(kinds))
}

// kindsWithKey returns the sorted kinds that have key.
func kindsWithKey(kinds map[string]kindSpec, key string) []string {
	var out []string
	for name, spec := range kinds {
		if _, ok := fieldsOf(spec.typ)[key]; ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// flat decodes a resource or monitor: the common keys into obj (a pointer to
// Resource or Monitor), the kind's keys into a new kind struct stored in its
// pointer field, and the "servers:" block into pending overrides.
func (d *decoder) flat(n *yaml.Node, path string, obj reflect.Value, kinds map[string]kindSpec, what string, ov override) {
	entries, ok := d.entries(n, path)
	if !ok {
		return
	}
	v := obj.Elem()
	common := fieldsOf(v.Type())
	var typ string
	for _, e := range entries {
		if e.key == "type" {
			d.value(e.v, childPath(path, "type"), v.Field(common["type"]))
			typ = v.Field(common["type"]).String()
		}
	}
	spec, known := kinds[typ]
	typPath := childPath(path, "type")
	switch {
	case known:
	case typ == "" || d.bad[typPath]:
	case what == "monitor" && automaticMonitors[typ] != "":
		d.bad[typPath] = true
		d.errorf(typPath, "an %s monitor is added automatically with its resource; do not configure one", typ)
	default:
		d.bad[typPath] = true
		d.errorf(typPath, "unknown %s type %q (valid: %s)", what, typ, strings.Join(kindNames(kinds), ", "))
	}
	var kv reflect.Value
	var kindFields map[string]int
	if known {
		kv = reflect.New(spec.typ)
		kindFields = fieldsOf(spec.typ)
	}
	for _, e := range entries {
		p := childPath(path, e.key)
		if i, ok := common[e.key]; ok {
			if e.key != "type" {
				d.value(e.v, p, v.Field(i))
			}
			continue
		}
		if e.key == "servers" {
			d.overrides(e.v, p, spec, known, kinds, common, ov)
			continue
		}
		if known {
			if i, ok := kindFields[e.key]; ok {
				d.value(e.v, p, kv.Elem().Field(i))
				continue
			}
		}
		if others := kindsWithKey(kinds, e.key); len(others) > 0 {
			if known {
				d.bad[p] = true
				d.errorAt(e.k.Line, p, "not valid for type %s (valid for %s)", typ, strings.Join(others, ", "))
			}
			continue
		}
		valid := append(keysOf(common), "servers")
		if known {
			valid = append(valid, keysOf(kindFields)...)
		}
		d.unknownKey(e.k, p, e.key, valid)
	}
	if known {
		v.FieldByName(spec.field).Set(kv)
	}
}

// overrides decodes a "servers:" block: server name → individually set keys.
// The values are decoded later, into copies made once defaults are applied.
func (d *decoder) overrides(n *yaml.Node, path string, spec kindSpec, known bool, kinds map[string]kindSpec, common map[string]int, ov override) {
	if n = d.resolve(n); n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of server name to the values set up individually for it, got %s", describe(n))
		return
	}
	servers, ok := d.entries(n, path)
	if !ok {
		return
	}
	for _, s := range servers {
		sp := childPath(path, s.key)
		block := d.resolve(s.v)
		if block == nil {
			return
		}
		o := ov
		o.path, o.server = sp, s.key
		if block.Kind == yaml.ScalarNode && block.ShortTag() == "!!null" {
			d.pending = append(d.pending, o)
			continue
		}
		entries, ok := d.entries(block, sp)
		if !ok {
			continue
		}
		for _, e := range entries {
			p := childPath(sp, e.key)
			switch {
			case !known:
				// The type is missing or wrong: that is the error to fix.
			case slices.Contains(spec.settable, e.key):
				o.entries = append(o.entries, e)
			case hasKey(fieldsOf(spec.typ), e.key) || hasKey(common, e.key) || len(kindsWithKey(kinds, e.key)) > 0:
				d.bad[p] = true
				if len(spec.settable) == 0 {
					d.errorAt(e.k.Line, p, "not individually settable for type %s (nothing is)", spec.typName(kinds))
				} else {
					d.errorAt(e.k.Line, p, "not individually settable for type %s (settable: %s)", spec.typName(kinds), strings.Join(spec.settable, ", "))
				}
			default:
				d.unknownKey(e.k, p, e.key, spec.settable)
			}
		}
		d.pending = append(d.pending, o)
	}
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// typName returns the name under which spec is listed in kinds.
func (s kindSpec) typName(kinds map[string]kindSpec) string {
	for name, k := range kinds {
		if k.typ == s.typ {
			return name
		}
	}
	return "?"
}

// resource decodes one group resource.
func (d *decoder) resource(n *yaml.Node, path string, r *Resource) {
	d.flat(n, path, reflect.ValueOf(r), resourceKinds, "resource", override{res: r})
}

// monitor decodes one monitor.
func (d *decoder) monitor(n *yaml.Node, path string, m *Monitor) {
	d.flat(n, path, reflect.ValueOf(m), monitorKinds, "monitor", override{mon: m})
}

// applyOverrides builds the per-server copies of resources and monitors,
// once defaults are applied to the common values.
func (d *decoder) applyOverrides() {
	for _, o := range d.pending {
		switch {
		case o.res != nil:
			spec, ok := resourceKinds[o.res.Type]
			if !ok {
				continue
			}
			cp := *o.res
			cp.perServer = nil
			cp.DependsOn = slices.Clone(o.res.DependsOn)
			d.mergeKind(reflect.ValueOf(&cp).Elem().FieldByName(spec.field), spec, o)
			if o.res.perServer == nil {
				o.res.perServer = make(map[string]*Resource)
			}
			o.res.perServer[o.server] = &cp
		case o.mon != nil:
			spec, ok := monitorKinds[o.mon.Type]
			if !ok {
				continue
			}
			cp := *o.mon
			cp.perServer = nil
			d.mergeKind(reflect.ValueOf(&cp).Elem().FieldByName(spec.field), spec, o)
			if o.mon.perServer == nil {
				o.mon.perServer = make(map[string]*Monitor)
			}
			o.mon.perServer[o.server] = &cp
		}
	}
}

// mergeKind replaces the kind pointer field ptr with a deep copy of what it
// points to, with the override's values decoded over it.
func (d *decoder) mergeKind(ptr reflect.Value, spec kindSpec, o override) {
	kv := reflect.New(spec.typ)
	if !ptr.IsNil() {
		kv.Elem().Set(ptr.Elem())
	}
	cloneFields(kv.Elem())
	fields := fieldsOf(spec.typ)
	for _, e := range o.entries {
		f := kv.Elem().Field(fields[e.key])
		f.Set(reflect.Zero(f.Type()))
		d.value(e.v, childPath(o.path, e.key), f)
	}
	ptr.Set(kv)
}

// cloneFields replaces the slice and map fields of the struct v with copies,
// so that a per-server copy shares nothing with the common value.
func cloneFields(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			if f.IsNil() {
				continue
			}
			c := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			reflect.Copy(c, f)
			f.Set(c)
		case reflect.Map:
			if f.IsNil() {
				continue
			}
			c := reflect.MakeMapWithSize(f.Type(), f.Len())
			for it := f.MapRange(); it.Next(); {
				c.SetMapIndex(it.Key(), it.Value())
			}
			f.Set(c)
		}
	}
}
