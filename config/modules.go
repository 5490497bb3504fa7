package config

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// ModuleTable is one [modules.<name>] table, kept undecoded until the
// module list, which knows the module's options, decodes it
// (DecodeModule).
type ModuleTable struct {
	prim toml.Primitive
	md   *toml.MetaData
}

// Problem of a module's options, from their Validate method.
type OptionsProblem struct {
	Key string // the option's key in the module's table, e.g. "max_items"
	// Path is the key's path within the table when the key is nested, in
	// place of Key: e.g. "services", "2", "host" for the host of the
	// second table of [[modules.m.services]].
	Path    []string
	Message string
}

// Validator is an options struct that checks its values after decoding.
type Validator interface {
	Validate() []OptionsProblem
}

// DecodeModule decodes [modules.<name>] into opts, a pointer to a struct
// holding the defaults with `toml` tags (nil for a module without
// options), as strictly as the rest of the configuration: an unknown key or
// a wrong type is a Problem with its path. optional allows the key
// `enabled` (default true), with which the operator turns the module off;
// enabled reports it. When opts is a Validator, its problems are added.
// A module without a table gets its defaults.
func (c *Config) DecodeModule(name string, opts any, optional bool) (enabled bool, err error) {
	probs := &Problems{}
	enabled = true
	path := toml.Key{"modules", name}
	if t, ok := c.Modules[name]; ok {
		d := &decoder{md: t.md, probs: probs}
		tbl, ok := d.tableAt(t.prim, path)
		if !ok {
			return enabled, probs
		}
		if prim, ok := tbl["enabled"]; ok {
			if optional {
				d.value(prim, reflect.ValueOf(&enabled).Elem(), sub(path, "enabled"))
			} else {
				probs.add(sub(path, "enabled").String(), "this module cannot be turned off")
			}
			delete(tbl, "enabled")
		}
		if opts != nil {
			d.table(tbl, reflect.ValueOf(opts).Elem(), path)
		} else {
			for _, k := range slices.Sorted(maps.Keys(tbl)) {
				msg := "unknown key: this module has no options"
				if optional {
					msg = "unknown key: this module has only `enabled`"
				}
				probs.add(sub(path, k).String(), "%s", msg)
			}
		}
	}
	if v, ok := opts.(Validator); ok && len(probs.List) == 0 {
		for _, p := range v.Validate() {
			at := sub(path, p.Key)
			if len(p.Path) > 0 {
				at = append(path[:len(path):len(path)], p.Path...)
			}
			probs.add(at.String(), "%s", p.Message)
		}
	}
	return enabled, probs.err()
}

// CheckModules reports a [modules.<name>] table for a module not in known.
func (c *Config) CheckModules(known []string) error {
	probs := &Problems{}
	for _, name := range slices.Sorted(maps.Keys(c.Modules)) {
		if !slices.Contains(known, name) {
			probs.add("modules."+name, "unknown module (the modules are: %s)", strings.Join(known, ", "))
		}
	}
	return probs.err()
}
