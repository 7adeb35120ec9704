package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pushwire/pushwire/internal/bytebudget"
)

// chunkReader hands out its data chunk bytes at a time, as a network would.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.chunk, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzReadBody: whatever the body, its arrival in pieces, its declared length, the body limit
// and the budget, readBody returns exactly the body or an error, holds no more than the
// limit (and about twice what arrived), and every reservation comes back.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte(`{"name":"e","channel":"c","data":"x"}`), uint16(7), uint8(0), uint16(64), uint32(1<<20))
	f.Add(bytes.Repeat([]byte("x"), 4000), uint16(100), uint8(1), uint16(5000), uint32(1<<20))
	f.Add(bytes.Repeat([]byte("y"), 4000), uint16(409), uint8(0), uint16(3000), uint32(1<<20))
	f.Add([]byte("abc"), uint16(1), uint8(2), uint16(10), uint32(10))
	f.Add(bytes.Repeat([]byte("z"), 2000), uint16(65535), uint8(3), uint16(6000), uint32(2000))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16, declare uint8, limit uint16, budgetBytes uint32) {
		maxBody := int64(limit) + 1
		budget := bytebudget.New(int64(budgetBytes))
		a := newAPI(nil, Options{MaxBodyBytes: maxBody, InboundBudget: budget})
		r := httptest.NewRequest("POST", "/apps/app-id/events", nil)
		r.Body = io.NopCloser(&chunkReader{data: body, chunk: int(chunk%8192) + 1})
		switch declare % 4 {
		case 0:
			r.ContentLength = int64(len(body))
		case 1:
			r.ContentLength = -1 // chunked
		case 2:
			r.ContentLength = int64(len(body)) + 1 // more promised than sent
		case 3:
			r.ContentLength = int64(len(body)) / 2 // less promised than sent
		}
		var got []byte
		var aerr *apiError
		var held int64
		a.holdBodies(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			got, aerr = a.readBody(r)
			held = budget.Used()
		})).ServeHTTP(httptest.NewRecorder(), r)
		if n := budget.Used(); n != 0 {
			t.Fatalf("budget holds %d bytes after the request", n)
		}
		if held > maxBody+1 || held > 2*int64(len(body))+bodyStartBytes+2 {
			t.Fatalf("held %d bytes for a %d-byte body (limit %d)", held, len(body), maxBody)
		}
		if budgetBytes > 0 && held > int64(budgetBytes) {
			t.Fatalf("held %d bytes past a budget of %d", held, budgetBytes)
		}
		if aerr != nil {
			if aerr.status != 400 && aerr.status != 413 && aerr.status != 503 {
				t.Fatalf("unexpected error %v", aerr)
			}
			if aerr.status == 413 && int64(len(body)) <= maxBody && r.ContentLength <= maxBody {
				t.Fatalf("413 for a %d-byte body under the limit %d", len(body), maxBody)
			}
			return
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("read %d bytes, sent %d", len(got), len(body))
		}
		if int64(len(body)) > maxBody {
			t.Fatalf("a %d-byte body over the limit %d was accepted", len(body), maxBody)
		}
		if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
			t.Fatalf("Content-Length %d accepted for %d bytes", r.ContentLength, len(body))
		}
	})
}
