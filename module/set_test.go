package module

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/starling-xmpp/starling/config"
)

// fake is a module that records its steps in *log.
type fake struct {
	name     string
	log      *[]string
	startErr error
}

func (f fake) Name() string { return f.name }
func (f fake) Start(_ context.Context, env *Env) error {
	*f.log = append(*f.log, "start "+f.name)
	env.AddStreamFeature(func() string { return "<" + f.name + "/>" })
	env.HandleHTTP("/"+f.name+"/", http.NotFoundHandler())
	return f.startErr
}
func (f fake) Stop(context.Context) error {
	*f.log = append(*f.log, "stop "+f.name)
	return nil
}

type optional struct{ fake }

func (optional) Optional() {}

type options struct {
	Max int `toml:"max"`
}

type configurable struct {
	fake
	got *[]any
}

func (configurable) Options() any { return &options{Max: 5} }

// Reloaded records the call, for Reloader.
func (c configurable) Reloaded() { *c.log = append(*c.log, "reloaded "+c.name) }
func (c configurable) Start(ctx context.Context, env *Env) error {
	*c.got = append(*c.got, env.Options())
	return c.fake.Start(ctx, env)
}

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSet(t *testing.T) {
	var steps []string
	var got []any
	var logs bytes.Buffer
	set := NewSet([]Module{
		fake{"a", &steps, nil},
		optional{fake{"b", &steps, nil}},
		configurable{fake{"c", &steps, nil}, &got},
		optional{fake{"d", &steps, nil}},
	})
	cfg := parse(t, "[modules.b]\nenabled = false\n[modules.c]\nmax = 7\n")
	base := Env{Log: slog.New(slog.NewTextHandler(&logs, nil)), Config: func() *config.Config { return cfg }}
	if err := set.Start(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start a", "start c", "start d"}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if !strings.Contains(logs.String(), `msg="module turned off" module=b`) {
		t.Errorf("turning b off was not logged: %s", logs.String())
	}
	if len(got) != 1 || got[0].(*options).Max != 7 {
		t.Errorf("c's options at start: %+v", got)
	}
	if f := string(set.StreamFeatures()); f != "<a/><c/><d/>" {
		t.Errorf("stream features %q", f)
	}
	var patterns []string
	set.HTTPHandlers(func(pattern string, _ http.Handler) { patterns = append(patterns, pattern) })
	if want := []string{"/a/", "/c/", "/d/"}; !slices.Equal(patterns, want) {
		t.Errorf("HTTP handlers %v, want %v", patterns, want)
	}

	// A reload changes the options the modules read, not which run, and
	// tells the started Reloaders once they are in force.
	steps = nil
	if err := set.Reload(parse(t, "[modules.b]\nenabled = false\n[modules.c]\nmax = 9\n")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"reloaded c"}; !slices.Equal(steps, want) {
		t.Errorf("steps of a reload %v, want %v", steps, want)
	}
	if o := (*set.options.Load())["c"].(*options); o.Max != 9 {
		t.Errorf("c's options after reload: %+v", o)
	}
	if err := set.Reload(parse(t, "")); err == nil || !strings.Contains(err.Error(), "modules.b.enabled changes only with a restart") {
		t.Errorf("turning b on by reload: %v", err)
	}

	steps = nil
	if err := set.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"stop d", "stop c", "stop a"}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
}

// TestSetStartFails: a module that fails to start stops the ones started
// before it, in reverse, and its error is returned.
func TestSetStartFails(t *testing.T) {
	var steps []string
	boom := errors.New("boom")
	set := NewSet([]Module{fake{"a", &steps, nil}, fake{"b", &steps, nil}, fake{"c", &steps, boom}, fake{"d", &steps, nil}})
	cfg := config.Default()
	err := set.Start(context.Background(), Env{Config: func() *config.Config { return cfg }})
	if !errors.Is(err, boom) {
		t.Fatalf("Start: %v", err)
	}
	if want := []string{"start a", "start b", "start c", "stop b", "stop a"}; !slices.Equal(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
}

// TestSetCheck: every problem of every table, with its path.
func TestSetCheck(t *testing.T) {
	var steps []string
	var got []any
	set := NewSet([]Module{fake{"a", &steps, nil}, configurable{fake{"c", &steps, nil}, &got}})
	err := set.Check(parse(t, "[modules.a]\nenabled = false\n[modules.c]\nmax = \"x\"\n[modules.zz]\n"))
	p, ok := errors.AsType[*config.Problems](err)
	if !ok {
		t.Fatalf("Check: %v", err)
	}
	var lines []string
	for _, pr := range p.List {
		lines = append(lines, pr.String())
	}
	want := []string{
		"modules.zz: unknown module (the modules are: a, c)",
		"modules.a.enabled: this module cannot be turned off",
		"modules.c.max: expected an integer, got a string",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(steps) != 0 {
		t.Errorf("Check started modules: %v", steps)
	}
}

// servicer serves sub.<host> for each host, sub from its options.
type servicer struct{ optional }

type subOptions struct {
	Sub string `toml:"sub"`
}

func (servicer) Options() any { return &subOptions{Sub: "svc"} }
func (servicer) ServiceDomains(cfg *config.Config, options any) []string {
	var ds []string
	for _, h := range cfg.Server.Hosts {
		ds = append(ds, options.(*subOptions).Sub+"."+h)
	}
	return ds
}

// TestServiceDomains: the enabled Servicers' domains, with their
// options, sorted; none from a module turned off.
func TestServiceDomains(t *testing.T) {
	var steps []string
	set := NewSet([]Module{
		servicer{optional{fake{"rooms", &steps, nil}}},
		servicer{optional{fake{"files", &steps, nil}}},
		fake{"plain", &steps, nil},
	})
	cfg := parse(t, "[server]\nhosts = [\"b.test\", \"a.test\"]\n[modules.rooms]\nsub = \"conference\"\n")
	got, err := set.ServiceDomains(cfg)
	want := []string{"conference.a.test", "conference.b.test", "svc.a.test", "svc.b.test"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ServiceDomains = %q, %v; want %q", got, err, want)
	}
	cfg = parse(t, "[modules.files]\nenabled = false\n")
	if got, err := set.ServiceDomains(cfg); err != nil || !slices.Equal(got, []string{"svc.localhost"}) {
		t.Errorf("with files off: %q, %v", got, err)
	}
	if len(steps) != 0 {
		t.Errorf("modules were started: %v", steps)
	}
	if _, err := set.ServiceDomains(parse(t, "[modules.rooms]\nsubb = \"x\"\n")); err == nil {
		t.Error("a bad table: no error")
	}
	if _, err := set.ServiceDomains(parse(t, "[modules.nosuch]\n")); err == nil {
		t.Error("an unknown module's table: no error")
	}
}
