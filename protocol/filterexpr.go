package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jpfunctions "github.com/jmespath-community/go-jmespath/pkg/functions"
	"github.com/jmespath-community/go-jmespath/pkg/interpreter"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/jmespath-community/go-jmespath/pkg/util"
)

// JMESPath filter expression limits (ws-protocol §3.8; the same numbers Sockudo uses).
// Exceeding one refuses the subscription with 4300.
const (
	// MaxExpressionBytes bounds the expression source.
	MaxExpressionBytes = 4096
	// MaxExpressionNodes bounds the parsed expression tree.
	MaxExpressionNodes = 256
	// MaxExpressionDepth bounds the nesting of the parsed expression tree.
	MaxExpressionDepth = 32
	// MaxFilterDocumentBytes bounds the message parts (data, extras) an expression reads; a
	// larger message does not match (the filter fails closed), as in Sockudo.
	MaxFilterDocumentBytes = 64 << 10
	// MaxExpressionCost bounds what the functions of one evaluation may build (string bytes,
	// array and object members); past it the evaluation fails closed.
	MaxExpressionCost = 1 << 20
)

// Expression is a compiled JMESPath filter expression. It is immutable and safe for
// concurrent use. Its result is tested for JMESPath truthiness: false, null, "", [] and {}
// reject the message, anything else accepts it; an evaluation error rejects it.
type Expression struct {
	src string
	ast parsing.ASTNode
}

// standardFunctions are the functions of the JMESPath specification, which Sockudo's
// evaluator (the Rust jmespath crate) implements. The library's JMESPath Community
// additions (pad_left, replace, split, let, $ …) are refused at compile time so that an
// expression means the same on both servers and evaluation cost stays linear in the message.
var standardFunctions = map[string]bool{
	"abs": true, "avg": true, "ceil": true, "contains": true, "ends_with": true, "floor": true,
	"join": true, "keys": true, "length": true, "map": true, "max": true, "max_by": true,
	"merge": true, "min": true, "min_by": true, "not_null": true, "reverse": true, "sort": true,
	"sort_by": true, "starts_with": true, "sum": true, "to_array": true, "to_number": true,
	"to_string": true, "type": true, "values": true,
}

// baseCaller holds the library's function table, built once and shared (it is read-only).
var baseCaller = func() interpreter.FunctionCaller {
	var fs []jpfunctions.FunctionEntry
	for _, f := range jpfunctions.GetDefaultFunctions() {
		if standardFunctions[f.Name] {
			fs = append(fs, f)
		}
	}
	return interpreter.NewFunctionCaller(fs...)
}()

func exprErr(format string, args ...any) *Error {
	return &Error{Code: CodeChannelError, Message: "invalid filter: filter.expression " + fmt.Sprintf(format, args...)}
}

// ParseExpressionOption reads the expression member of a compound filter: a JMESPath source
// string or {"language":"jmespath","source":"…"} (language may be omitted). It returns nil,
// nil for null.
func ParseExpressionOption(raw json.RawMessage) (*Expression, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > 2*MaxExpressionBytes+256 {
		return nil, exprErr("is %d bytes, the limit is %d", len(raw), MaxExpressionBytes)
	}
	var src string
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &src) != nil {
			return nil, exprErr("must be a JMESPath string or {\"language\":\"jmespath\",\"source\":\"…\"}")
		}
	case '{':
		var o map[string]json.RawMessage
		if json.Unmarshal(raw, &o) != nil {
			return nil, exprErr("must be a JMESPath string or {\"language\":\"jmespath\",\"source\":\"…\"}")
		}
		for k, v := range o {
			switch k {
			case "language":
				var lang string
				if json.Unmarshal(v, &lang) != nil {
					return nil, exprErr("language must be a string")
				}
				if lang != "jmespath" {
					return nil, exprErr("language %q is not supported: only \"jmespath\"", Truncate(lang, 32))
				}
			case "source":
				if json.Unmarshal(v, &src) != nil {
					return nil, exprErr("source must be a non-empty string")
				}
			default:
				return nil, exprErr("member %q is not one of language, source", Truncate(k, 32))
			}
		}
	default:
		return nil, exprErr("must be a JMESPath string or {\"language\":\"jmespath\",\"source\":\"…\"}")
	}
	return CompileExpression(src)
}

// CompileExpression parses a JMESPath source once, checking its size, tree size, depth and
// functions. Errors carry code 4300 and say what is wrong.
func CompileExpression(src string) (*Expression, *Error) {
	if src == "" {
		return nil, exprErr("must not be empty")
	}
	if len(src) > MaxExpressionBytes {
		return nil, exprErr("is %d bytes, the limit is %d", len(src), MaxExpressionBytes)
	}
	ast, err := parseJMESPath(src)
	if err != nil {
		return nil, exprErr("does not compile: %s", Truncate(err.Error(), 200))
	}
	nodes := 0
	if e := checkExprNode(ast, 1, &nodes); e != nil {
		return nil, e
	}
	return &Expression{src: src, ast: ast}, nil
}

// parseJMESPath runs the library's parser, turning a panic on hostile input into an error.
func parseJMESPath(src string) (ast parsing.ASTNode, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser failed: %v", r)
		}
	}()
	return parsing.NewParser().Parse(src)
}

func checkExprNode(n parsing.ASTNode, depth int, count *int) *Error {
	if depth > MaxExpressionDepth {
		return exprErr("is too deep: at most %d levels", MaxExpressionDepth)
	}
	if *count++; *count > MaxExpressionNodes {
		return exprErr("is too large: at most %d nodes", MaxExpressionNodes)
	}
	switch n.NodeType {
	case parsing.ASTLetExpression, parsing.ASTVariable, parsing.ASTBindings, parsing.ASTBinding:
		return exprErr("uses a let expression or variable, which JMESPath (as Sockudo evaluates it) has not")
	case parsing.ASTRootNode:
		return exprErr("uses the root node $, which JMESPath (as Sockudo evaluates it) has not")
	case parsing.ASTFunctionExpression:
		name, _ := n.Value.(string)
		if !standardFunctions[name] {
			return exprErr("calls unknown function %q", Truncate(name, 32))
		}
	}
	for _, c := range n.Children {
		if e := checkExprNode(c, depth+1, count); e != nil {
			return e
		}
	}
	return nil
}

// String returns the expression's source.
func (e *Expression) String() string { return e.src }

// Match evaluates the expression against a message document (see FilterDocument) and
// reports whether the result is truthy. A nil document or an evaluation error is false.
func (e *Expression) Match(doc map[string]any) bool {
	if doc == nil {
		return false
	}
	ok, _ := e.eval(doc)
	return ok
}

func (e *Expression) eval(doc map[string]any) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, fmt.Errorf("evaluation failed: %v", r)
		}
	}()
	bc := budgetCaller{left: MaxExpressionCost}
	res, err := interpreter.NewInterpreter(doc, &bc, nil).Execute(e.ast, doc)
	if err != nil {
		return false, err
	}
	return !util.IsFalse(res), nil
}

var errExprCost = errors.New("expression evaluation exceeded its cost limit")

// budgetCaller charges what each function call builds against one evaluation's budget.
type budgetCaller struct{ left int }

func (b *budgetCaller) CallFunction(name string, args []any) (any, error) {
	if name == "join" && len(args) == 2 {
		// join's output is the only one that can outgrow its inputs (a long separator times
		// many items): check before building it.
		sep, _ := args[0].(string)
		n := 0
		if items, ok := args[1].([]any); ok {
			for _, it := range items {
				if s, ok := it.(string); ok {
					n += len(s) + len(sep)
				}
			}
		}
		if b.left -= n; b.left < 0 {
			return nil, errExprCost
		}
	}
	res, err := baseCaller.CallFunction(name, args)
	if err != nil {
		return nil, err
	}
	if b.left -= valueCost(res); b.left < 0 {
		return nil, errExprCost
	}
	return res, nil
}

func valueCost(v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []any:
		return 8 * (len(x) + 1)
	case map[string]any:
		return 16 * (len(x) + 1)
	}
	return 8
}

// FilterDocument is the projection of a message that filter expressions see, as Sockudo
// builds it: event, channel, data, name, userId, tags, headers (extras.headers without the
// reserved sockudo_ ones), messageId, streamId, serial and action (create, update, delete,
// append for mutable messages), absent ones null. data is the data member as it travels:
// a string for HTTP publishes, whatever JSON a client event carried. It returns nil when
// the message is too large to project (the filter then fails closed).
func FilterDocument(m *Message) map[string]any {
	if len(m.Data)+len(m.Extras) > MaxFilterDocumentBytes {
		return nil
	}
	doc := map[string]any{
		"event": nil, "channel": nil, "data": nil, "name": nil, "userId": nil, "tags": nil,
		"headers": nil, "messageId": nil, "streamId": nil, "serial": nil, "action": nil,
	}
	str := func(k, v string) {
		if v != "" {
			doc[k] = v
		}
	}
	str("event", m.Event)
	str("channel", m.Channel)
	str("name", m.Name)
	str("userId", m.UserID)
	str("messageId", m.MessageID)
	str("streamId", m.StreamID)
	if len(m.Data) > 0 {
		var d any
		if json.Unmarshal(m.Data, &d) != nil {
			return nil
		}
		doc["data"] = d
	}
	if m.Tags != nil {
		t := make(map[string]any, len(m.Tags))
		for k, v := range m.Tags {
			t[k] = v
		}
		doc["tags"] = t
	}
	if len(m.Extras) > 0 {
		var x struct {
			Headers map[string]any `json:"headers"`
		}
		if json.Unmarshal(m.Extras, &x) == nil && x.Headers != nil {
			for k := range x.Headers {
				if strings.HasPrefix(k, "sockudo_") {
					delete(x.Headers, k)
				}
			}
			doc["headers"] = x.Headers
		}
	}
	if m.Serial > 0 {
		doc["serial"] = float64(m.Serial)
	}
	if m.Mutable != nil && m.Mutable.Action != "" {
		doc["action"] = string(m.Mutable.Action)
	}
	return doc
}

// LazyDocument builds a message's FilterDocument the first time an expression needs it, so
// a fan-out projects each message at most once and not at all when no subscriber has an
// expression. The zero value is unusable: use NewLazyDocument.
type LazyDocument struct {
	m     *Message
	doc   map[string]any
	built bool
	// results memoizes each distinct expression's verdict on this message, so subscribers
	// that subscribed with the same expression share one evaluation per publish.
	results map[string]bool
}

// NewLazyDocument returns a LazyDocument for m.
func NewLazyDocument(m *Message) LazyDocument { return LazyDocument{m: m} }

// Match evaluates e against the message once per distinct source and reports the result.
func (d *LazyDocument) Match(e *Expression) bool {
	if r, ok := d.results[e.src]; ok {
		return r
	}
	r := e.Match(d.Get())
	if d.results == nil {
		d.results = make(map[string]bool, 1)
	}
	d.results[e.src] = r
	return r
}

// Get returns the document, building it on first use (nil when the message is too large).
func (d *LazyDocument) Get() map[string]any {
	if !d.built {
		d.doc, d.built = FilterDocument(d.m), true
	}
	return d.doc
}
