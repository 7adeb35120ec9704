package httpapi

import (
	"strings"
	"testing"

	"github.com/pushwire/pushwire/protocol"
)

func TestParseMutation(t *testing.T) {
	tests := []struct {
		action  protocol.Action
		body    string
		wantErr string // substring; "" = accepted
		check   func(t *testing.T, op protocol.Mutation, socket string)
	}{
		{protocol.ActionUpdate, `{"data":"edited","description":"typo","metadata":{"x": 1},"op_id":"op-1","client_id":"u1"}`, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if string(op.Data) != `"edited"` || op.Description != "typo" || string(op.Metadata) != `{"x":1}` || op.OpID != "op-1" || op.ClientID != "u1" {
				t.Errorf("%+v", op)
			}
		}},
		{protocol.ActionUpdate, `{"data":{"a":1}}`, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if string(op.Data) != `"{\"a\":1}"` {
				t.Errorf("object data kept as %s, want its text as a string", op.Data)
			}
		}},
		{protocol.ActionUpdate, `{"name":"chat.edited","clear_fields":["extras"]}`, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if op.Name == nil || *op.Name != "chat.edited" || !op.ClearExtras || op.ClearData {
				t.Errorf("%+v", op)
			}
		}},
		{protocol.ActionUpdate, `{}`, "at least one of name, data, extras or clear_fields", nil},
		{protocol.ActionUpdate, ``, "Request body is empty", nil},
		{protocol.ActionUpdate, `{"data":"x","clear_fields":["data"]}`, "both replaced and listed", nil},
		{protocol.ActionUpdate, `{"clear_fields":["data","data"]}`, "twice", nil},
		{protocol.ActionUpdate, `{"clear_fields":["tags"]}`, "not a field", nil},
		{protocol.ActionUpdate, `{"name":3}`, "name must be a string", nil},
		{protocol.ActionUpdate, `{"data":"x","extras":[1]}`, "extras must be an object", nil},
		{protocol.ActionUpdate, `{"data":"x","op_id":""}`, "op_id must be 1 to 64 bytes", nil},
		{protocol.ActionUpdate, `{"data":"x","op_id":"` + strings.Repeat("o", 65) + `"}`, "op_id must be 1 to 64 bytes", nil},
		{protocol.ActionUpdate, `{"data":"x","socket_id":"nope"}`, "socket_id", nil},
		{protocol.ActionUpdate, `{"data":"x","socket_id":"123.456"}`, "", func(t *testing.T, _ protocol.Mutation, socket string) {
			if socket != "123.456" {
				t.Errorf("socket %q", socket)
			}
		}},
		{protocol.ActionDelete, ``, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if op.Data != nil || op.ClearData {
				t.Errorf("empty delete: %+v", op)
			}
		}},
		{protocol.ActionDelete, `{"clear_fields":["data"]}`, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if !op.ClearData {
				t.Errorf("%+v", op)
			}
		}},
		{protocol.ActionDelete, `{"name":"x"}`, "delete does not take name", nil},
		{protocol.ActionDelete, `{"clear_fields":["name"]}`, "not a field", nil},
		{protocol.ActionAppend, `{"data":" world","op_id":"op-2"}`, "", func(t *testing.T, op protocol.Mutation, _ string) {
			if string(op.Data) != `" world"` || op.OpID != "op-2" {
				t.Errorf("%+v", op)
			}
		}},
		{protocol.ActionAppend, `{"data":1}`, "append data must be a string", nil},
		{protocol.ActionAppend, `{"extras":{"a":1}}`, "append needs data", nil},
		{protocol.ActionAppend, `{"data":"x","clear_fields":["data"]}`, "append does not take clear_fields", nil},
		{protocol.ActionAppend, `{"data":"x","name":"n"}`, "append does not take name", nil},
		{protocol.ActionAppend, `[1]`, "expected an object", nil},
	}
	for _, tc := range tests {
		t.Run(string(tc.action)+" "+tc.body, func(t *testing.T) {
			op, socket, aerr := parseMutation(tc.action, []byte(tc.body))
			switch {
			case tc.wantErr == "" && aerr != nil:
				t.Fatalf("refused: %v", aerr)
			case tc.wantErr != "" && aerr == nil:
				t.Fatalf("accepted, want an error with %q", tc.wantErr)
			case tc.wantErr != "":
				if aerr.status != 400 || !strings.Contains(aerr.msg, tc.wantErr) {
					t.Fatalf("%d %s, want 400 with %q", aerr.status, aerr.msg, tc.wantErr)
				}
				return
			}
			if op.Action != tc.action {
				t.Errorf("action %s", op.Action)
			}
			if tc.check != nil {
				tc.check(t, op, socket)
			}
		})
	}
}

// FuzzParseMutation: any body gets a mutation or a 4xx, never a panic; accepted appends
// carry a JSON string fragment.
func FuzzParseMutation(f *testing.F) {
	f.Add(0, []byte(`{"data":"x","clear_fields":["extras"],"metadata":{"a":[1]}}`))
	f.Add(1, []byte(`{}`))
	f.Add(2, []byte(`{"data":"\u0000","extras":{"ai":{"codec":{"status":"complete"}}}}`))
	f.Add(2, []byte(`{"data":1e999}`))
	f.Fuzz(func(t *testing.T, which int, body []byte) {
		actions := []protocol.Action{protocol.ActionUpdate, protocol.ActionDelete, protocol.ActionAppend}
		action := actions[((which%3)+3)%3]
		op, _, aerr := parseMutation(action, body)
		if aerr != nil {
			if aerr.status < 400 || aerr.status > 499 {
				t.Fatalf("status %d", aerr.status)
			}
			return
		}
		if action == protocol.ActionAppend && (len(op.Data) == 0 || op.Data[0] != '"') {
			t.Fatalf("append accepted with data %q", op.Data)
		}
		if op.Name != nil && action != protocol.ActionUpdate {
			t.Fatalf("%s accepted a name", action)
		}
	})
}
