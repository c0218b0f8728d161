package control

import (
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// FuzzAccessCall decodes arbitrary AccessCall payloads as the channel
// does and checks them: no input panics, and every call checkCall lets
// through has a known op with what that op needs, within the bounds.
func FuzzAccessCall(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"request","dst":"tag:prod-db:5432","for":7200000000000,"reason":"INC-4211"}`,
		`{"id":2,"op":"list","pending":true}`,
		`{"id":3,"op":"approve","request":"ar-12","for":3600000000000}`,
		`{"id":4,"op":"deny","request":"ar-12","reason":"no"}`,
		`{"id":5,"op":"step-up"}`,
		`{"id":6,"op":"revoke","request":"ar-1","for":-1}`,
		`{"op":"request","dst":"","for":0}`,
		`{"op":7}`,
		`[]`,
		`{"id":18446744073709551615,"op":"cancel","request":"ar-99999999999999999999"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := wire.Decode(wire.TypeAccessCall, payload)
		if err != nil {
			return
		}
		call, ok := m.(*wire.AccessCall)
		if !ok {
			t.Fatalf("decoded %T", m)
		}
		if checkCall(call) != "" {
			return
		}
		if len(call.Dst) > maxAccessDst || len(call.Reason) > maxAccessReason || len(call.Request) > maxAccessID || call.For < 0 {
			t.Fatalf("out of bounds call accepted: %+v", call)
		}
		switch call.Op {
		case wire.AccessOpRequest:
			if call.Dst == "" || call.For <= 0 {
				t.Fatalf("request without destination or duration accepted: %+v", call)
			}
		case wire.AccessOpList, wire.AccessOpStepUp:
		case wire.AccessOpCancel, wire.AccessOpApprove, wire.AccessOpDeny, wire.AccessOpRevoke:
			if call.Request == "" {
				t.Fatalf("%s without a request accepted", call.Op)
			}
		default:
			t.Fatalf("unknown op %q accepted", call.Op)
		}
	})
}
