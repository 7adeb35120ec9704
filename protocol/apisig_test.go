package protocol

import (
	"errors"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestCanonicalQuery(t *testing.T) {
	cases := []struct{ name, raw, want string }{
		{"sorted", "auth_key=k&auth_signature=s&b=2&a=1", "a=1&auth_key=k&b=2"},
		{"auth_signature left out", "auth_signature=s&auth_key=k&auth_version=1.0", "auth_key=k&auth_version=1.0"},
		{"keys lowercased", "auth_key=k&auth_signature=s&Info=user_count&FILTER_BY_PREFIX=presence-", "auth_key=k&filter_by_prefix=presence-&info=user_count"},
		{"values unescaped", "auth_key=k&auth_signature=s&info=user_count%2Csubscription_count", "auth_key=k&info=user_count,subscription_count"},
		{"plus is a space", "auth_key=k&auth_signature=s&q=a+b", "auth_key=k&q=a b"},
		{"escaped plus stays a plus", "auth_key=k&auth_signature=s&q=a%2Bb", "auth_key=k&q=a+b"},
		{"escaped ampersand and equals", "auth_key=k&auth_signature=s&q=a%26b%3Dc", "auth_key=k&q=a&b=c"},
		{"equals inside a value", "auth_key=k&auth_signature=s&q=a=b", "auth_key=k&q=a=b"},
		{"key without a value", "auth_key=k&auth_signature=s&flag", "auth_key=k&flag="},
		{"empty pairs skipped", "&&auth_key=k&&auth_signature=s&", "auth_key=k"},
		{"escaped key", "auth_key=k&auth_signature=s&%49nfo=x", "auth_key=k&info=x"},
		{"unicode value", "auth_key=k&auth_signature=s&q=%C3%A9t%C3%A9", "auth_key=k&q=été"},
		{"duplicate keeps the last", "auth_key=k&auth_signature=s&x=1&x=2", "auth_key=k&x=2"},
		{"duplicate across case keeps the last", "auth_key=k&auth_signature=s&X=1&x=2", "auth_key=k&x=2"},
		{"body_md5 signed", "auth_key=k&auth_signature=s&body_md5=abc", "auth_key=k&body_md5=abc"},
		{"byte order", "auth_key=k&auth_signature=s&b=1&B_=2&a_b=3&a-b=4", "a-b=4&a_b=3&auth_key=k&b=1&b_=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseAPIQuery(tc.raw)
			if err != nil {
				t.Fatalf("%s: %v", tc.raw, err)
			}
			if got := q.CanonicalQuery(); got != tc.want {
				t.Errorf("%s: got %q want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseAPIQueryFields(t *testing.T) {
	q, err := ParseAPIQuery("AUTH_KEY=k&auth_timestamp=123&auth_version=1.0&body_md5=d41d&auth_signature=s%20ig&info=x")
	if err != nil {
		t.Fatal(err)
	}
	want := APIQuery{AuthKey: "k", AuthTimestamp: "123", AuthVersion: "1.0", AuthSignature: "s ig", BodyMD5: "d41d", HasBodyMD5: true}
	got := *q
	got.Params = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	if _, ok := q.Params["auth_signature"]; ok || q.Params["info"] != "x" || q.Params["auth_key"] != "k" {
		t.Fatalf("params %v", q.Params)
	}
}

func TestParseAPIQueryErrors(t *testing.T) {
	cases := []struct {
		name, raw string
		want      error
	}{
		{"empty", "", ErrAPIQueryMissing},
		{"only separators", "&", ErrAPIQueryMalformed},
		{"no signature", "auth_key=k", ErrAPIQueryMissing},
		{"no key", "auth_signature=s", ErrAPIQueryMissing},
		{"empty key", "auth_key=&auth_signature=s", ErrAPIQueryMissing},
		{"unrelated parameters only", "info=user_count", ErrAPIQueryMissing},
		{"duplicate auth_key", "auth_key=k&auth_key=j&auth_signature=s", ErrAPIQueryMalformed},
		{"duplicate auth_signature", "auth_key=k&auth_signature=s&auth_signature=t", ErrAPIQueryMalformed},
		{"duplicate body_md5", "auth_key=k&auth_signature=s&body_md5=a&BODY_MD5=a", ErrAPIQueryMalformed},
		{"bad escape in a value", "auth_key=%zz&auth_signature=s", ErrAPIQueryMalformed},
		{"bad escape in a key", "auth_key=k&auth_signature=s&%g=1", ErrAPIQueryMalformed},
		{"truncated escape", "auth_key=k&auth_signature=s&x=%4", ErrAPIQueryMalformed},
		{"too long", strings.Repeat("a", MaxAPIQueryLength+1), ErrAPIQueryMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAPIQuery(tc.raw); !errors.Is(err, tc.want) {
				t.Errorf("%.40q: got %v, want %v", tc.raw, err, tc.want)
			}
		})
	}
}

func TestAPIStringToSign(t *testing.T) {
	cases := []struct{ method, path, query, want string }{
		{"POST", "/apps/3/events", "a=1", "POST\n/apps/3/events\na=1"},
		{"get", "/apps/3/channels", "", "GET\n/apps/3/channels\n"},
		{"GET", "/apps/3/channels/my%2Dchannel", "b=2", "GET\n/apps/3/channels/my%2Dchannel\nb=2"},
	}
	for _, tc := range cases {
		if got := APIStringToSign(tc.method, tc.path, tc.query); got != tc.want {
			t.Errorf("got %q want %q", got, tc.want)
		}
	}
}

// The worked example of Pusher's REST API authentication docs (docKey and docSecret are in
// auth_test.go).
const (
	docTimestamp = 1353088179
	docBody      = `{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}`
	docSignature = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
)

// TestPusherDocExample verifies the documented request and re-creates it with SignAPIRequest.
func TestPusherDocExample(t *testing.T) {
	raw := "auth_key=" + docKey + "&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=" + docSignature
	q, err := ParseAPIQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !q.VerifyAPISignature(docSecret, "POST", "/apps/3/events") {
		t.Fatal("Pusher's documented example does not verify")
	}
	if err := q.CheckBodyMD5("POST", []byte(docBody)); err != nil {
		t.Fatal(err)
	}
	signed := SignAPIRequest(docKey, docSecret, "POST", "/apps/3/events", nil, []byte(docBody), time.Unix(docTimestamp, 0))
	if v, err := url.ParseQuery(signed); err != nil || v.Get("auth_signature") != docSignature {
		t.Fatalf("SignAPIRequest gave %s, want auth_signature=%s", signed, docSignature)
	}
}

func TestCheckTimestamp(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct {
		ts string
		ok bool
	}{
		{"1700000000", true},
		{"1699999400", true},  // 600 s old
		{"1700000600", true},  // 600 s ahead
		{"1699999399", false}, // 601 s old
		{"1700000601", false}, // 601 s ahead
		{"", false},
		{"abc", false},
		{"1700000000.5", false},
		{"-1", false},
		{"99999999999999999999999", false},
	}
	for _, tc := range cases {
		q := &APIQuery{AuthTimestamp: tc.ts}
		if err := q.CheckTimestamp(now); (err == nil) != tc.ok {
			t.Errorf("%q: got %v, want ok=%v", tc.ts, err, tc.ok)
		}
	}
}

func TestCheckBodyMD5(t *testing.T) {
	const emptyMD5 = "d41d8cd98f00b204e9800998ecf8427e"
	body := []byte(docBody)
	cases := []struct {
		name   string
		method string
		md5    *string
		body   []byte
		ok     bool
	}{
		{"POST matching", "POST", ptr("ec365a775a4cd0599faeb73354201b6f"), body, true},
		{"POST empty body", "POST", ptr(emptyMD5), nil, true},
		{"POST lowercase method", "post", ptr(emptyMD5), nil, true},
		{"POST uppercase hex", "POST", ptr("EC365A775A4CD0599FAEB73354201B6F"), body, false},
		{"POST other body", "POST", ptr(emptyMD5), body, false},
		{"POST missing", "POST", nil, body, false},
		{"POST missing on empty body", "POST", nil, nil, false},
		{"GET without", "GET", nil, nil, true},
		{"GET with", "GET", ptr(emptyMD5), nil, false},
		{"DELETE with", "DELETE", ptr(emptyMD5), nil, false},
	}
	for _, tc := range cases {
		q := &APIQuery{}
		if tc.md5 != nil {
			q.BodyMD5, q.HasBodyMD5 = *tc.md5, true
		}
		if err := q.CheckBodyMD5(tc.method, tc.body); (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func ptr(s string) *string { return &s }

// TestSignAPIRequestRoundTrip signs requests with awkward parameters and checks that the
// query verifies, and that any change to method, path, secret or a parameter breaks it.
func TestSignAPIRequestRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cases := []struct {
		name   string
		method string
		path   string
		params url.Values
		body   []byte
	}{
		{"GET without parameters", "GET", "/apps/1/channels", nil, nil},
		{"GET with info", "GET", "/apps/1/channels", url.Values{"info": {"user_count,subscription_count"}, "filter_by_prefix": {"presence-"}}, nil},
		{"spaces and plus", "GET", "/apps/1/channels", url.Values{"q": {"a b+c"}}, nil},
		{"reserved characters", "GET", "/apps/1/channels", url.Values{"q": {"a&b=c%d;e#f?g"}}, nil},
		{"uppercase key", "GET", "/apps/1/channels", url.Values{"Info": {"x"}}, nil},
		{"unicode", "GET", "/apps/1/channels/caf%C3%A9", url.Values{"q": {"été ✓"}}, nil},
		{"several values keep the last", "GET", "/apps/1/channels", url.Values{"q": {"1", "2"}}, nil},
		{"POST with body", "POST", "/apps/1/events", nil, []byte(docBody)},
		{"POST with empty body", "POST", "/apps/1/users/u/terminate_connections", nil, []byte{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signed := SignAPIRequest("key", "secret", tc.method, tc.path, tc.params, tc.body, now)
			q, err := ParseAPIQuery(signed)
			if err != nil {
				t.Fatal(err)
			}
			if q.AuthKey != "key" || q.AuthVersion != "1.0" || q.CheckTimestamp(now) != nil || q.CheckBodyMD5(tc.method, tc.body) != nil {
				t.Fatalf("fields of %s: %+v", signed, q)
			}
			if !q.VerifyAPISignature("secret", tc.method, tc.path) {
				t.Fatalf("%s does not verify", signed)
			}
			for k, vs := range tc.params {
				if got := q.Params[strings.ToLower(k)]; got != vs[len(vs)-1] {
					t.Fatalf("param %s = %q, want %q", k, got, vs[len(vs)-1])
				}
			}
			if q.VerifyAPISignature("other", tc.method, tc.path) || q.VerifyAPISignature("secret", "PUT", tc.path) ||
				q.VerifyAPISignature("secret", tc.method, tc.path+"/") {
				t.Fatal("a changed secret, method or path still verifies")
			}
			q.Params["extra"] = "1"
			if q.VerifyAPISignature("secret", tc.method, tc.path) {
				t.Fatal("an added parameter still verifies")
			}
		})
	}
}

func FuzzParseAPIQuery(f *testing.F) {
	f.Add("auth_key=k&auth_timestamp=1&auth_version=1.0&auth_signature=s", "GET", "/apps/1/channels", "")
	f.Add("auth_key=k&auth_signature=s&info=user_count%2Csubscription_count&filter_by_prefix=presence-", "GET", "/apps/1/channels", "")
	f.Add("auth_key=k&auth_signature=s&Q=a+b&q=%2B&x=%e9&flag&&", "GET", "/apps/1/channels/caf%C3%A9", "")
	f.Add("a=%&b", "POST", "/apps/1/events", `{"name":"x"}`)
	f.Add("auth_key="+docKey+"&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature="+docSignature,
		"POST", "/apps/3/events", docBody)
	f.Add("body_md5=x&BODY_MD5=y&auth_key=k&auth_signature=s", "get", "", "\x00")
	f.Fuzz(func(t *testing.T, raw, method, path, body string) {
		q, err := ParseAPIQuery(raw)
		if err == nil {
			if q.AuthKey == "" || q.AuthSignature == "" {
				t.Fatalf("%q parsed without auth_key or auth_signature", raw)
			}
			keys := make([]string, 0, len(q.Params))
			for k := range q.Params {
				if k != strings.ToLower(k) || k == "auth_signature" {
					t.Fatalf("%q: param key %q kept", raw, k)
				}
				keys = append(keys, k)
			}
			sort.Strings(keys)
			canon := q.CanonicalQuery()
			if len(keys) > 0 && !strings.HasPrefix(canon, keys[0]+"=") {
				t.Fatalf("%q: canonical %q does not start with the smallest key %q", raw, canon, keys[0])
			}
			_ = q.VerifyAPISignature("secret", method, path)
			_ = q.CheckBodyMD5(method, []byte(body))
			_ = q.CheckTimestamp(time.Now())
			// A signature computed over the canonical string verifies.
			q.AuthSignature = HMACHex("secret", APIStringToSign(method, path, canon))
			if !q.VerifyAPISignature("secret", method, path) {
				t.Fatalf("%q: own canonical signature does not verify", raw)
			}
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
		now := time.Now()
		signed := SignAPIRequest("key", "secret", method, path, params, []byte(body), now)
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
		if sq.CheckBodyMD5("POST", []byte(body)) != nil || sq.CheckTimestamp(now) != nil || sq.AuthKey != "key" {
			t.Fatalf("signed query %.200q: body_md5, timestamp or key wrong", signed)
		}
		if sq.VerifyAPISignature("secret", method, path+"x") {
			t.Fatalf("signed query %.200q verifies for another path", signed)
		}
		if _, ok := sq.Params["auth_timestamp"]; !ok {
			t.Fatalf("signed query %.200q lost auth_timestamp", signed)
		}
	})
}
