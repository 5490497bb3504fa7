package server_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
	"github.com/starling-xmpp/starling/module"
	"github.com/starling-xmpp/starling/server"
)

// TestExampleModules: config.example.toml has a table for every module of
// the list, with a comment, `enabled = true` for those that can be turned
// off (and only those), every option with its default, and it passes
// CheckConfig.
func TestExampleModules(t *testing.T) {
	const path = "../config.example.toml"
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.CheckConfig(cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	last := 0
	for _, m := range server.Modules() {
		name := m.Name()
		i := strings.Index(text, "\n[modules."+name+"]\n#")
		if i < 0 {
			t.Errorf("no commented [modules.%s] in the example", name)
			continue
		}
		if i < last {
			t.Errorf("[modules.%s] is not in the list's order", name)
		}
		last = i
		table := text[i+1:]
		if j := strings.Index(table[1:], "\n["); j >= 0 {
			table = table[:j+1]
		}
		_, optional := m.(module.Optional)
		if has := strings.Contains(table, "\nenabled = true\n"); has != optional {
			t.Errorf("[modules.%s]: `enabled = true` listed %v, the module can be turned off %v", name, has, optional)
		}
		if c, ok := m.(module.Configurable); ok {
			opts, def := c.Options(), c.Options()
			if _, err := cfg.DecodeModule(name, opts, optional); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(opts, def) {
				t.Errorf("[modules.%s] in the example: %+v, the defaults: %+v", name, opts, def)
			}
			rt := reflect.TypeOf(def).Elem()
			for k := range rt.NumField() {
				key := rt.Field(k).Tag.Get("toml")
				if !regexp.MustCompile(`(?m)^` + key + ` = `).MatchString(table) {
					t.Errorf("[modules.%s]: option %s is not in the example", name, key)
				}
			}
		}
	}
}
