package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable pushwire reads: PUSHWIRE_ plus the
// upper-cased YAML key of a top-level setting (PUSHWIRE_MAX_CONNECTIONS), or PUSHWIRE_APP_
// plus the upper-cased key of an app field (PUSHWIRE_APP_SECRET).
const EnvPrefix = "PUSHWIRE_"

// appEnvPrefix starts the variables that describe the single environment-defined app.
const appEnvPrefix = EnvPrefix + "APP_"

// LoadOptions says where Load reads configuration from.
type LoadOptions struct {
	// Path is the YAML file to read; empty means no file.
	Path string
	// LookupEnv reads an environment variable (os.LookupEnv in production). It serves both
	// the PUSHWIRE_* overrides and ${VAR} interpolation in the file. Nil means no environment.
	LookupEnv func(string) (string, bool)
}

// Load builds the configuration: a zero Config, then the YAML file at opts.Path (with ${VAR}
// and ${VAR:-default} expanded from the environment), then PUSHWIRE_* environment overrides,
// then ApplyDefaults and Validate. Every error names the file or variable and the field.
func Load(opts LoadOptions) (*Config, error) {
	c, err := loadSources(opts)
	if err != nil {
		return nil, err
	}
	if err := finish(c, opts.Path); err != nil {
		return nil, err
	}
	return c, nil
}

// loadSources reads the file and the environment overrides, without defaults or validation.
func loadSources(opts LoadOptions) (*Config, error) {
	c := &Config{}
	if opts.Path != "" {
		if err := decodeFile(c, opts.Path, opts.LookupEnv); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(c, opts.LookupEnv); err != nil {
		return nil, err
	}
	return c, nil
}

// finish applies the defaults and validates; path, when set, prefixes the message.
func finish(c *Config, path string) error {
	c.ApplyDefaults()
	errs := c.problems()
	if len(errs) == 0 {
		return nil
	}
	if path != "" {
		return fmt.Errorf("config: %s: %s", path, strings.Join(errs, "; "))
	}
	return fmt.Errorf("config: %s", strings.Join(errs, "; "))
}

// decodeFile reads, interpolates and strictly decodes the YAML file at path into c.
func decodeFile(c *Config, path string, lookup func(string) (string, bool)) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	text, err := interpolate(string(raw), lookup)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if err := decodeYAML(c, []byte(text)); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// decodeYAML decodes one YAML document into c. It first walks the document against Config's
// shape so that unknown keys and badly typed values are reported with their line and full
// field path (apps[1].max_connections); a strict yaml.v3 decode then fills c.
func decodeYAML(c *Config, text []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(text))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: nothing to set
		}
		return errors.New(cleanYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return errors.New(cleanYAMLError(err))
		}
		return fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if root.ShortTag() == "!!null" {
		return nil // a file of only comments
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: the top level must be a mapping of settings, got %s",
			root.Line, nodeKind(root))
	}
	var chk checker
	chk.check(root, reflect.TypeFor[Config](), "")
	if len(chk.errs) > 0 {
		return errors.New(strings.Join(chk.errs, "; "))
	}
	strict := yaml.NewDecoder(bytes.NewReader(text))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(cleanYAMLError(err))
	}
	return nil
}

// cleanYAMLError turns a yaml.v3 error into "line N: ..." messages joined by "; ", without
// the "yaml: " prefix and Go type names.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if j := strings.Index(m, " in type config."); j >= 0 {
			m = m[:j]
		}
		out[i] = m
	}
	return strings.Join(out, "; ")
}

// checker walks a YAML node tree against a Go type and collects readable errors.
type checker struct{ errs []string }

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// check verifies that n can decode into a value of type t; path names the field.
func (k *checker) check(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // null leaves the zero value, which means "default"
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		k.leaf(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		k.check(n, t.Elem(), path)
	case reflect.Struct:
		k.mapping(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			k.errs = append(k.errs, fmt.Sprintf("line %d: %s: expected a list, got %s",
				n.Line, path, nodeKind(n)))
			return
		}
		for i, e := range n.Content {
			k.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		k.leaf(n, t, path)
	}
}

// mapping checks a YAML mapping against struct type t: every key must be a known field,
// given once, with a value of the right type.
func (k *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		k.errs = append(k.errs, fmt.Sprintf("line %d: %s: expected a mapping, got %s",
			n.Line, path, nodeKind(n)))
		return
	}
	fields := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(t) {
		if key := yamlKey(f); key != "" {
			fields[key] = f
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.ShortTag() == "!!merge" {
			k.merge(vn, t, path)
			continue
		}
		name := joinPath(path, kn.Value)
		if line, dup := seen[kn.Value]; dup {
			k.errs = append(k.errs, fmt.Sprintf("line %d: %s: already set at line %d",
				kn.Line, name, line))
			continue
		}
		seen[kn.Value] = kn.Line
		f, ok := fields[kn.Value]
		if !ok {
			k.errs = append(k.errs, fmt.Sprintf("line %d: field %s not found", kn.Line, name))
			continue
		}
		k.check(vn, f.Type, name)
	}
}

// merge checks the value of a "<<" merge key: a mapping or a list of mappings.
func (k *checker) merge(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, e := range n.Content {
			k.merge(e, t, path)
		}
		return
	}
	k.mapping(n, t, path)
}

// leaf decodes n into a fresh value of type t and records any error against path.
func (k *checker) leaf(n *yaml.Node, t reflect.Type, path string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		k.errs = append(k.errs, fmt.Sprintf("line %d: %s: %v", n.Line, path, err))
		return
	}
	for _, m := range te.Errors {
		if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
			m = rest
		}
		k.errs = append(k.errs, fmt.Sprintf("line %d: %s: %s", n.Line, path, m))
	}
}

// nodeKind names a node's kind for error messages.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// joinPath appends a key to a dotted field path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlKey is the YAML key of a struct field, or "" when the field is not serialised.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

// interpolate expands ${VAR} and ${VAR:-default} in the raw file text. A variable that is
// unset (or, with a default, empty) takes the default; unset with no default is an error.
// $${ stands for a literal ${. Whole-line comments are left alone.
func interpolate(text string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(text, "${") {
		return text, nil
	}
	var b strings.Builder
	var errs []string
	for i, line := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "#") {
			b.WriteString(line)
			continue
		}
		if err := interpolateLine(&b, line, lookup); err != nil {
			errs = append(errs, fmt.Sprintf("line %d: %v", i+1, err))
		}
	}
	if len(errs) > 0 {
		return "", errors.New(strings.Join(errs, "; "))
	}
	return b.String(), nil
}

// interpolateLine writes one line to b with its ${...} references expanded.
func interpolateLine(b *strings.Builder, s string, lookup func(string) (string, bool)) error {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return nil
		}
		if i > 0 && s[i-1] == '$' { // $${ escapes a literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return fmt.Errorf("unterminated %q (want ${VAR} or ${VAR:-default})",
				strings.TrimRight(s[i:], "\r\n"))
		}
		expr := s[i+2 : i+2+end]
		s = s[i+2+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return fmt.Errorf("invalid variable name in ${%s}", expr)
		}
		v, ok := "", false
		if lookup != nil {
			v, ok = lookup(name)
		}
		switch {
		case hasDef && (!ok || v == ""):
			v = def
		case !ok:
			return fmt.Errorf("environment variable %s is not set (use ${%s:-default} to give a default)",
				name, name)
		}
		b.WriteString(v)
	}
}

// validEnvName reports whether s is a shell-style variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// option is one setting reachable from the environment or a flag: a field of Config or App
// whose type parseValue understands.
type option struct {
	key   string // YAML key, e.g. max_connections
	index []int
	typ   reflect.Type
}

// options lists the settable fields of struct type t in declaration order.
func options(t reflect.Type) []option {
	var out []option
	for _, f := range reflect.VisibleFields(t) {
		key := yamlKey(f)
		if key == "" || !parsable(f.Type) {
			continue
		}
		out = append(out, option{key: key, index: f.Index, typ: f.Type})
	}
	return out
}

var (
	configOptions = options(reflect.TypeFor[Config]())
	appOptions    = options(reflect.TypeFor[App]())
	durationType  = reflect.TypeFor[Duration]()
)

// envName is the variable of a top-level setting: PUSHWIRE_MAX_CONNECTIONS.
func envName(key string) string { return EnvPrefix + strings.ToUpper(key) }

// appEnvName is the variable of a field of the environment app: PUSHWIRE_APP_CACHE_TTL.
func appEnvName(key string) string { return appEnvPrefix + strings.ToUpper(key) }

// parsable reports whether parseValue can produce a value of type t.
func parsable(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Pointer:
		return t.Elem().Kind() == reflect.Bool
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// parseValue converts text from an environment variable or flag into a value of type t:
// durations via ParseDuration, integers via strconv, booleans as true/false/1/0, lists as
// comma-separated items.
func parseValue(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	if t == durationType {
		d, err := ParseDuration(s)
		if err != nil {
			return v, err
		}
		v.SetInt(int64(d))
		return v, nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return v, err
		}
		v.SetBool(b)
	case reflect.Pointer: // *bool
		b, err := parseBool(s)
		if err != nil {
			return v, err
		}
		p := reflect.New(t.Elem())
		p.Elem().SetBool(b)
		v.Set(p)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("invalid unsigned integer %q", s)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil {
			return v, fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(n)
	case reflect.Slice: // []string
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(t))
	default:
		return v, fmt.Errorf("unsupported setting type %s", t)
	}
	return v, nil
}

// parseBool accepts true, false, 1 and 0 (any case).
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (use true, false, 1 or 0)", s)
}

// applyEnv overrides c from PUSHWIRE_* variables. Empty variables count as unset. When
// PUSHWIRE_APP_ID, _KEY and _SECRET are all set they replace c.Apps with one app.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	if lookup == nil {
		return nil
	}
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		return v, ok && v != ""
	}
	var errs []string
	cv := reflect.ValueOf(c).Elem()
	for _, o := range configOptions {
		name := envName(o.key)
		s, ok := get(name)
		if !ok {
			continue
		}
		v, err := parseValue(o.typ, s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		cv.FieldByIndex(o.index).Set(v)
	}

	var app App
	av := reflect.ValueOf(&app).Elem()
	var setVars []string
	for _, o := range appOptions {
		name := appEnvName(o.key)
		s, ok := get(name)
		if !ok {
			continue
		}
		setVars = append(setVars, name)
		v, err := parseValue(o.typ, s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		av.FieldByIndex(o.index).Set(v)
	}
	if len(setVars) > 0 {
		var missing []string
		for _, key := range []string{"id", "key", "secret"} {
			if _, ok := get(appEnvName(key)); !ok {
				missing = append(missing, appEnvName(key))
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Sprintf(
				"missing %s: an app from the environment needs %sID, %sKEY and %sSECRET together (set: %s)",
				strings.Join(missing, ", "), appEnvPrefix, appEnvPrefix, appEnvPrefix,
				strings.Join(setVars, ", ")))
		} else {
			c.Apps = []App{app}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %s", strings.Join(errs, "; "))
	}
	return nil
}
