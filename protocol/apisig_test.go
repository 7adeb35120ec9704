package protocol

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCanonicalQuery(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"auth_key=k&auth_signature=s&b=2&a=1", "a=1&auth_key=k&b=2"},
		{"auth_key=k&auth_signature=s&Info=user_count%2Csubscription_count", "auth_key=k&info=user_count,subscription_count"},
		{"auth_key=k&auth_signature=s&q=a+b", "auth_key=k&q=a b"},
		{"auth_key=k&auth_signature=s&x=1&x=2", "auth_key=k&x=2"},
	}
	for _, c := range cases {
		q, err := ParseAPIQuery(c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got := q.CanonicalQuery(); got != c.want {
			t.Errorf("%s: got %q want %q", c.raw, got, c.want)
		}
	}
}

func TestParseAPIQueryErrors(t *testing.T) {
	for _, raw := range []string{"", "&", "auth_key=k", "auth_signature=s", "auth_key=k&auth_key=j&auth_signature=s", "auth_key=%zz&auth_signature=s", strings.Repeat("a", MaxAPIQueryLength+1)} {
		if _, err := ParseAPIQuery(raw); err == nil {
			t.Errorf("%q: want error", raw)
		}
	}
}

// TestPusherDocExample checks the worked example of Pusher's REST API authentication docs.
func TestPusherDocExample(t *testing.T) {
	raw := "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
	q, err := ParseAPIQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !q.VerifyAPISignature("7ad3773142a6692b25b8", "POST", "/apps/3/events") {
		t.Fatal("Pusher's documented example does not verify")
	}
	if err := q.CheckBodyMD5("POST", []byte(`{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`)); err != nil {
		t.Fatal(err)
	}
	if err := q.CheckTimestamp(time.Unix(1353088179+599, 0)); err != nil {
		t.Fatal(err)
	}
	if err := q.CheckTimestamp(time.Unix(1353088179+601, 0)); err == nil {
		t.Fatal("timestamp outside the window accepted")
	}
}

func FuzzParseAPIQuery(f *testing.F) {
	f.Add("auth_key=k&auth_timestamp=1&auth_version=1.0&auth_signature=s", "GET", "/apps/1/channels", "")
	f.Add("auth_key=k&auth_signature=s&info=user_count%2Csubscription_count&filter_by_prefix=presence-", "GET", "/apps/1/channels", "")
	f.Add("a=%&b", "POST", "/apps/1/events", `{"name":"x"}`)
	f.Fuzz(func(t *testing.T, raw, method, path, body string) {
		q, err := ParseAPIQuery(raw)
		if err == nil {
			_ = q.CanonicalQuery()
			_ = q.VerifyAPISignature("secret", method, path)
			_ = q.CheckBodyMD5(method, []byte(body))
			_ = q.CheckTimestamp(time.Now())
		}
		// Whatever the parameters, a request signed like the SDKs do must verify.
		params := url.Values{}
		if pq, perr := url.ParseQuery(raw); perr == nil {
			for k, v := range pq {
				lk := strings.ToLower(k)
				if strings.HasPrefix(lk, "auth_") || lk == "body_md5" {
					continue
				}
				params[k] = v
			}
		}
		if method == "" {
			method = "GET"
		}
		signed := SignAPIRequest("key", "secret", method, path, params, []byte(body), time.Now())
		if len(signed) > MaxAPIQueryLength {
			if _, err := ParseAPIQuery(signed); err == nil {
				t.Fatalf("query of %d bytes accepted over the %d-byte cap", len(signed), MaxAPIQueryLength)
			}
			return
		}
		sq, err := ParseAPIQuery(signed)
		if err != nil {
			t.Fatalf("signed query %.200q does not parse: %v", signed, err)
		}
		if !sq.VerifyAPISignature("secret", method, path) {
			t.Fatalf("signed query %.200q does not verify", signed)
		}
		if sq.CheckBodyMD5("POST", []byte(body)) != nil {
			t.Fatalf("body_md5 mismatch")
		}
	})
}
