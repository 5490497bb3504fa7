package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testOptions struct {
	MaxItems int      `toml:"max_items"`
	Window   Duration `toml:"window"`
}

func (o *testOptions) Validate() []OptionsProblem {
	if o.MaxItems < 1 {
		return []OptionsProblem{{Key: "max_items", Message: "must be at least 1"}}
	}
	if o.MaxItems > 100 {
		return []OptionsProblem{{Path: []string{"limits", "example.org", "max_items"}, Message: "must be at most 100"}}
	}
	return nil
}

func TestDecodeModule(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		optional   bool
		opts       bool // the module has options
		enabled    bool
		max        int
		problems   []string
	}{
		{name: "no table: defaults", opts: true, enabled: true, max: 10},
		{name: "options", toml: "[modules.m]\nmax_items = 3\n", opts: true, enabled: true, max: 3},
		{name: "turned off", toml: "[modules.m]\nenabled = false\n", optional: true, opts: true, enabled: false, max: 10},
		{name: "turned off, no options", toml: "[modules.m]\nenabled = false\n", optional: true, enabled: false},
		{name: "core module", toml: "[modules.m]\nenabled = false\n", opts: true, enabled: true, max: 10,
			problems: []string{"modules.m.enabled: this module cannot be turned off"}},
		{name: "core module without options", toml: "[modules.m]\nenabled = false\n", enabled: true,
			problems: []string{"modules.m.enabled: this module cannot be turned off"}},
		{name: "unknown key", toml: "[modules.m]\nmax_itemz = 3\n", opts: true, enabled: true, max: 10,
			problems: []string{"modules.m.max_itemz: unknown key (did you mean max_items?)"}},
		{name: "no options", toml: "[modules.m]\nmax_items = 3\n", optional: true, enabled: true,
			problems: []string{"modules.m.max_items: unknown key: this module has only `enabled`"}},
		{name: "wrong type", toml: "[modules.m]\nmax_items = \"3\"\nenabled = 1\n", optional: true, opts: true, enabled: true, max: 10,
			problems: []string{"modules.m.enabled: expected a boolean, got an integer", "modules.m.max_items: expected an integer, got a string"}},
		{name: "invalid value", toml: "[modules.m]\nmax_items = 0\n", opts: true, enabled: true,
			problems: []string{"modules.m.max_items: must be at least 1"}},
		{name: "invalid value at a nested key", toml: "[modules.m]\nmax_items = 101\n", opts: true, enabled: true,
			problems: []string{`modules.m.limits."example.org".max_items: must be at most 100`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			var opts *testOptions
			var arg any
			if tc.opts {
				opts = &testOptions{MaxItems: 10}
				arg = opts
			}
			enabled, err := cfg.DecodeModule("m", arg, tc.optional)
			var got []string
			if p, ok := errors.AsType[*Problems](err); ok {
				for _, pr := range p.List {
					got = append(got, pr.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.problems, "\n"))
			}
			if enabled != tc.enabled {
				t.Errorf("enabled = %v", enabled)
			}
			if opts != nil && len(tc.problems) == 0 && opts.MaxItems != tc.max {
				t.Errorf("max_items = %d, want %d", opts.MaxItems, tc.max)
			}
		})
	}
}

func TestCheckModules(t *testing.T) {
	cfg, err := Parse([]byte("[modules.vcard]\n[modules.vcrad]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckModules([]string{"ping", "vcard"})
	if err == nil || err.Error() != "modules.vcrad: unknown module (the modules are: ping, vcard)" {
		t.Fatalf("CheckModules: %v", err)
	}
	if err := Default().CheckModules([]string{"ping"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte("modules = 1\n")); err == nil || !strings.Contains(err.Error(), "modules: expected a table, got an integer") {
		t.Fatalf("modules = 1: %v", err)
	}
	if _, err := Parse([]byte("[modules]\nvcard = 1\n")); err == nil || !strings.Contains(err.Error(), "modules.vcard: expected a table, got an integer") {
		t.Fatalf("modules.vcard = 1: %v", err)
	}
}

type testService struct {
	Type   string   `toml:"type"`
	Port   int      `toml:"port"`
	TTL    Duration `toml:"ttl"`
	Limits struct {
		Max int `toml:"max"`
	} `toml:"limits"`
}

type testServices struct {
	Services []testService `toml:"services"`
}

// TestDecodeModuleArrayOfTables: an array of tables, written [[x]] or
// x = [{...}], decodes into a slice of structs as strictly as a table,
// its problems named by the table's position, counted from 1.
func TestDecodeModuleArrayOfTables(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []testService
		problems   []string
	}{
		{name: "none", toml: "[modules.m]\n", want: nil},
		{name: "empty", toml: "[modules.m]\nservices = []\n", want: []testService{}},
		{
			name: "double brackets",
			toml: "[[modules.m.services]]\ntype = \"stun\"\nport = 1\n[[modules.m.services]]\ntype = \"turn\"\nttl = \"1h\"\n[modules.m.services.limits]\nmax = 2\n",
			want: []testService{{Type: "stun", Port: 1}, {Type: "turn", TTL: Duration{time.Hour}}},
		},
		{
			name: "inline",
			toml: "[modules.m]\nservices = [{type = \"stun\"}, {type = \"turn\", port = 3}]\n",
			want: []testService{{Type: "stun"}, {Type: "turn", Port: 3}},
		},
		{
			name:     "unknown key",
			toml:     "[[modules.m.services]]\ntype = \"stun\"\n[[modules.m.services]]\ntpye = \"turn\"\n",
			problems: []string{"modules.m.services.2.tpye: unknown key (did you mean type?)"},
		},
		{
			name:     "wrong types",
			toml:     "[modules.m]\nservices = [{type = 1, port = \"3\", ttl = 5, limits = 4}]\n",
			problems: []string{"modules.m.services.1.limits: expected a table, got an integer", "modules.m.services.1.port: expected an integer, got a string", "modules.m.services.1.ttl: expected a string, got an integer", "modules.m.services.1.type: expected a string, got an integer"},
		},
		{name: "not tables", toml: "[modules.m]\nservices = [1]\n", problems: []string{"modules.m.services: expected an array of tables"}},
		{name: "a table", toml: "[modules.m.services]\ntype = \"stun\"\n", problems: []string{"modules.m.services: expected an array of tables, got a table"}},
		{name: "a string", toml: "[modules.m]\nservices = \"stun\"\n", problems: []string{"modules.m.services: expected an array of tables, got a string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			var opts testServices
			_, err = cfg.DecodeModule("m", &opts, false)
			var got []string
			if p, ok := errors.AsType[*Problems](err); ok {
				for _, pr := range p.List {
					got = append(got, pr.String())
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.problems, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.problems, "\n"))
			}
			if len(tc.problems) == 0 {
				for i := range opts.Services {
					opts.Services[i].Limits.Max = 0
				}
				if !reflect.DeepEqual(opts.Services, tc.want) {
					t.Errorf("services = %#v, want %#v", opts.Services, tc.want)
				}
			}
		})
	}
}
