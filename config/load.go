package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the TOML key path, like `limits.max_stanza_bytes` or
	// `hosts."example.org".tls.cert`; for a syntax error it is "line N".
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every problem found in a configuration. It is the error
// returned by Parse, Load and Validate.
type Problems struct {
	// File is the configuration file, when known (Load).
	File string
	List []Problem
}

// Error lists the problems one per line, each prefixed with the file
// name when known.
func (p *Problems) Error() string {
	var b strings.Builder
	for i, pr := range p.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.File != "" {
			b.WriteString(p.File)
			b.WriteString(": ")
		}
		b.WriteString(pr.String())
	}
	return b.String()
}

func (p *Problems) add(path, format string, args ...any) {
	p.List = append(p.List, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// has reports whether a problem was already recorded at path or under or
// above it, so that one mistake is not reported twice.
func (p *Problems) has(path string) bool {
	for _, pr := range p.List {
		if pr.Path == path || strings.HasPrefix(path, pr.Path+".") || strings.HasPrefix(pr.Path, path+".") {
			return true
		}
	}
	return false
}

func (p *Problems) err() error {
	if p == nil || len(p.List) == 0 {
		return nil
	}
	return p
}

// Load reads and parses the file at path (see Parse). Relative paths in
// the file, and in the defaults of the keys it leaves out, are resolved
// from the file's directory (ResolvePaths), not from the working
// directory. Problems in the file are returned as *Problems with File set.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parse(data, filepath.Dir(abs))
	if p, ok := errors.AsType[*Problems](err); ok {
		p.File = path
	}
	return cfg, err
}

// Parse decodes TOML data on top of Default and validates the result.
// Unknown keys (matched exactly, case-sensitively), values of the wrong
// type and invalid values are all reported together as *Problems; the
// returned Config is nil then. Relative paths stay relative to the
// working directory.
func Parse(data []byte) (*Config, error) { return parse(data, "") }

// parse is Parse with relative paths resolved from dir, if not "", before
// the configuration is validated.
func parse(data []byte, dir string) (*Config, error) {
	cfg, _, probs := decode(data)
	if dir != "" {
		cfg.ResolvePaths(dir)
	}
	if len(probs.List) == 0 {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return cfg, nil
	}
	if v, ok := errors.AsType[*Problems](cfg.Validate()); ok {
		// Fields that failed to decode kept their default; report what
		// else is wrong without repeating those paths.
		for _, pr := range v.List {
			if !probs.has(pr.Path) {
				probs.List = append(probs.List, pr)
			}
		}
	}
	return nil, probs
}

// decode reads data on top of Default. It walks the TOML document with
// toml.Primitive values so that it can keep going after an error: every
// unknown key and every value of the wrong type is reported, with its
// path. Decoding is exact: BurntSushi/toml would match `Max_Stanza_Bytes`
// to a field case-insensitively; we do not.
func decode(data []byte) (*Config, toml.MetaData, *Problems) {
	cfg := Default()
	probs := &Problems{}
	var doc map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if err != nil {
		if pe, ok := errors.AsType[toml.ParseError](err); ok {
			probs.add(fmt.Sprintf("line %d", pe.Position.Line), "%s", pe.Message)
		} else {
			probs.add("", "%v", err)
		}
		return cfg, md, probs
	}
	d := &decoder{md: &md, probs: probs}
	d.table(doc, reflect.ValueOf(cfg).Elem(), nil)
	// Safety net: anything the walk did not consume is unknown.
	for _, k := range md.Undecoded() {
		if len(k) > 2 && k[0] == "modules" {
			continue // decoded by the module list (DecodeModule)
		}
		if p := k.String(); !probs.has(p) {
			probs.add(p, "unknown key")
		}
	}
	return cfg, md, probs
}

type decoder struct {
	md    *toml.MetaData
	probs *Problems
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value decodes prim into rv (addressable), recording problems at path.
func (d *decoder) value(prim toml.Primitive, rv reflect.Value, path toml.Key) {
	t := rv.Type()
	isText := reflect.PointerTo(t).Implements(textUnmarshaler)
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct &&
		!reflect.PointerTo(t.Elem()).Implements(textUnmarshaler):
		d.tables(prim, rv, path)
	case t.Kind() == reflect.Struct && !isText, t.Kind() == reflect.Map:
		tbl, ok := d.tableAt(prim, path)
		if !ok {
			return
		}
		if t.Kind() == reflect.Struct {
			d.table(tbl, rv, path)
			return
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMap(t))
		}
		for _, k := range slices.Sorted(maps.Keys(tbl)) {
			ev := reflect.New(t.Elem()).Elem()
			if old := rv.MapIndex(reflect.ValueOf(k)); old.IsValid() {
				ev.Set(old)
			}
			d.value(tbl[k], ev, sub(path, k))
			rv.SetMapIndex(reflect.ValueOf(k), ev)
		}
	default:
		want := expected(t, isText)
		isArray := strings.HasPrefix(want, "an array")
		got := d.tomlType(path)
		if d.md.Type(path...) == "" {
			// A key of a table in an array of tables has no type
			// in the metadata (its path holds the table's index).
			got = d.valueType(prim)
		}
		if want != "" && got != want && !(isArray && got == "an array") {
			d.probs.add(path.String(), "expected %s, got %s", want, got)
			return
		}
		nv := reflect.New(t)
		if err := d.md.PrimitiveDecode(prim, nv.Interface()); err != nil {
			if isArray {
				d.probs.add(path.String(), "expected %s", want)
			} else {
				d.probs.add(path.String(), "%s", decodeMessage(err))
			}
			return
		}
		rv.Set(nv.Elem())
	}
}

// table decodes the keys of one TOML table into the struct rv.
func (d *decoder) table(tbl map[string]toml.Primitive, rv reflect.Value, path toml.Key) {
	fields := tomlFields(rv.Type())
	for _, k := range slices.Sorted(maps.Keys(tbl)) {
		p := sub(path, k)
		if len(path) == 0 && k == "modules" {
			d.modules(tbl[k], rv.FieldByName("Modules"), p)
			continue
		}
		i, ok := fields[k]
		if to, moved := movedKeys[p.String()]; !ok && moved {
			d.probs.add(p.String(), "moved: write %s instead", to)
			continue
		}
		if !ok {
			msg := "unknown key"
			if s := suggest(k, fields); s != "" {
				msg += " (did you mean " + s + "?)"
			}
			d.probs.add(p.String(), "%s", msg)
			continue
		}
		d.value(tbl[k], rv.Field(i), p)
	}
}

// tables decodes prim, an array of tables ([[x]] or x = [{...}]), into
// the slice of structs rv, each table as strictly as any other; the path
// of a table's keys holds its position, counted from 1 as an operator
// counts them (`modules.m.services.2.host`).
func (d *decoder) tables(prim toml.Primitive, rv reflect.Value, path toml.Key) {
	var tbls []map[string]toml.Primitive
	if typ := d.md.Type(path...); typ != "ArrayHash" && typ != "Array" && typ != "" {
		d.probs.add(path.String(), "expected an array of tables, got %s", d.tomlType(path))
		return
	}
	var elems []any
	if err := d.md.PrimitiveDecode(prim, &elems); err != nil {
		d.probs.add(path.String(), "expected an array of tables")
		return
	}
	for _, e := range elems {
		// Decoding a value that is not a table into a map succeeds,
		// empty: each element is checked first.
		if _, ok := e.(map[string]any); !ok {
			d.probs.add(path.String(), "expected an array of tables")
			return
		}
	}
	if err := d.md.PrimitiveDecode(prim, &tbls); err != nil {
		d.probs.add(path.String(), "expected an array of tables")
		return
	}
	s := reflect.MakeSlice(rv.Type(), len(tbls), len(tbls))
	for i, tbl := range tbls {
		d.table(tbl, s.Index(i), sub(path, strconv.Itoa(i+1)))
	}
	rv.Set(s)
}

// tableAt decodes prim, the value at path, as a table, or records that it
// is not one. PrimitiveDecode into a map silently accepts a non-table
// value, so the TOML type is checked first ("" is an implicit table).
func (d *decoder) tableAt(prim toml.Primitive, path toml.Key) (map[string]toml.Primitive, bool) {
	var tbl map[string]toml.Primitive
	typ := d.md.Type(path...)
	if typ != "Hash" && typ != "" {
		d.probs.add(path.String(), "expected a table, got %s", d.tomlType(path))
		return nil, false
	}
	if got := d.valueType(prim); typ == "" && got != "a table" {
		// Within an array of tables (no type in the metadata).
		d.probs.add(path.String(), "expected a table, got %s", got)
		return nil, false
	}
	if err := d.md.PrimitiveDecode(prim, &tbl); err != nil {
		d.probs.add(path.String(), "expected a table, got %s", d.tomlType(path))
		return nil, false
	}
	return tbl, true
}

// modules keeps each [modules.<name>] table undecoded (ModuleTable), for
// the module list; only the shape, a table of tables, is checked here.
func (d *decoder) modules(prim toml.Primitive, rv reflect.Value, path toml.Key) {
	tbl, ok := d.tableAt(prim, path)
	if !ok {
		return
	}
	m := make(map[string]ModuleTable, len(tbl))
	for _, k := range slices.Sorted(maps.Keys(tbl)) {
		p := sub(path, k)
		if typ := d.md.Type(p...); typ != "Hash" && typ != "" {
			d.probs.add(p.String(), "expected a table, got %s", d.tomlType(p))
			continue
		}
		m[k] = ModuleTable{prim: tbl[k], md: d.md}
	}
	rv.Set(reflect.ValueOf(m))
}

// movedKeys are keys of earlier releases that live elsewhere now, by
// their old path: their problem names the new one.
var movedKeys = map[string]string{
	"limits.max_offline_messages": "modules.offline.max_messages",
}

// tomlType names the TOML type of the value at path, for messages.
func (d *decoder) tomlType(path toml.Key) string {
	switch d.md.Type(path...) {
	case "String":
		return "a string"
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "Bool":
		return "a boolean"
	case "Datetime":
		return "a date-time"
	case "Array":
		return "an array"
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "an array of tables"
	}
	return "something else"
}

// valueType names the TOML type of prim, in tomlType's words, from its
// decoded value: for values whose path the metadata does not type.
func (d *decoder) valueType(prim toml.Primitive) string {
	var v any
	if err := d.md.PrimitiveDecode(prim, &v); err != nil {
		return "something else"
	}
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "something else"
}

// expected names the TOML type a Go field needs, in tomlType's words.
func expected(t reflect.Type, isText bool) string {
	if isText {
		return "a string"
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "an integer"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(expected(t.Elem(), false), "a "), "an ") + "s"
	}
	return ""
}

// decodeMessage strips BurntSushi/toml's "toml: line N (last key ...): "
// prefix: our Problem carries the path already.
func decodeMessage(err error) string {
	if pe, ok := errors.AsType[toml.ParseError](err); ok {
		return pe.Message
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "toml: ") {
		msg = strings.TrimPrefix(msg, "toml: ")
		if i := strings.Index(msg, "): "); i >= 0 && strings.Contains(msg[:i], "last key") {
			msg = msg[i+3:]
		}
	}
	return msg
}

// tomlFields maps the toml tag names of struct type t to field indexes.
func tomlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = i
	}
	return m
}

// suggest returns the known key closest to k, if it is close enough to
// be a typo.
func suggest(k string, fields map[string]int) string {
	best, bestD := "", 3
	for name := range fields {
		if dist := levenshtein(strings.ToLower(k), name); dist < bestD || dist == bestD && name < best {
			best, bestD = name, dist
		}
	}
	if bestD > 2 {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sub(path toml.Key, k string) toml.Key {
	return append(path[:len(path):len(path)], k)
}
