package protocol

import (
	"strings"
	"testing"
)

// Pusher's documented credentials (auth-signatures.md, "Worked examples").
const (
	docKey      = "278d425bdf160c739803"
	docSecret   = "7ad3773142a6692b25b8"
	docSocketID = "1234.1234"
)

// TestAuthVectors checks the signatures against published values. The presence vector in
// Pusher's docs signs user_info {"name":"Mr. Pusher"}; the same data with "Mr. Channels"
// (as quoted in some briefs) signs to a different value, computed independently with
// `openssl dgst -sha256 -hmac`.
func TestAuthVectors(t *testing.T) {
	tests := []struct {
		name         string
		stringToSign string
		wantToSign   string
		want         string
	}{
		{
			name:         "private (Pusher docs)",
			stringToSign: ChannelStringToSign(docSocketID, "private-foobar", "", false),
			wantToSign:   "1234.1234:private-foobar",
			want:         "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		},
		{
			name:         "private ignores channel data",
			stringToSign: ChannelStringToSign(docSocketID, "private-foobar", `{"user_id":1}`, false),
			wantToSign:   "1234.1234:private-foobar",
			want:         "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
		},
		{
			name:         "presence (Pusher docs, Mr. Pusher)",
			stringToSign: ChannelStringToSign(docSocketID, "presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`, true),
			wantToSign:   `1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}`,
			want:         "278d425bdf160c739803:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
		},
		{
			name:         "presence (Mr. Channels, computed)",
			stringToSign: ChannelStringToSign(docSocketID, "presence-foobar", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`, true),
			wantToSign:   `1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}`,
			want:         "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
		},
		{
			name:         "user sign-in (Pusher docs)",
			stringToSign: UserStringToSign(docSocketID, `{"id":"12345"}`),
			wantToSign:   `1234.1234::user::{"id":"12345"}`,
			want:         "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
		},
		{
			name:         "user sign-in with watchlist (computed)",
			stringToSign: UserStringToSign(docSocketID, `{"id":"12345","watchlist":["777"]}`),
			wantToSign:   `1234.1234::user::{"id":"12345","watchlist":["777"]}`,
			want:         "278d425bdf160c739803:a3f0e081cd6cf91880c08e75ebd5bea1036f47978b150722066011b6e0f47a7f",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stringToSign != tc.wantToSign {
				t.Fatalf("string to sign = %q, want %q", tc.stringToSign, tc.wantToSign)
			}
			if got := AuthToken(docKey, docSecret, tc.stringToSign); got != tc.want {
				t.Errorf("AuthToken = %s, want %s", got, tc.want)
			}
			_, sig, _ := strings.Cut(tc.want, ":")
			if got := HMACHex(docSecret, tc.stringToSign); got != sig {
				t.Errorf("HMACHex = %s, want %s", got, sig)
			}
			if !VerifyAuth(docKey, docSecret, tc.want, tc.stringToSign) {
				t.Errorf("VerifyAuth rejects the documented value")
			}
		})
	}
}

func TestHMACHex(t *testing.T) {
	// RFC 4231 test case 2.
	got := HMACHex("Jefe", "what do ya want for nothing?")
	want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got != want {
		t.Errorf("HMACHex = %s, want %s", got, want)
	}
}

func TestVerifyAuth(t *testing.T) {
	const good = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	const sig = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
	const toSign = "1234.1234:private-foobar"
	tests := []struct {
		name   string
		key    string
		secret string
		auth   string
		toSign string
		want   bool
	}{
		{"valid", docKey, docSecret, good, toSign, true},
		{"uppercase hex", docKey, docSecret, docKey + ":" + strings.ToUpper(sig), toSign, false},
		{"wrong key in auth", docKey, docSecret, "aaaaaaaaaaaaaaaaaaaa:" + sig, toSign, false},
		{"app key differs", "otherkey", docSecret, good, toSign, false},
		{"wrong secret", docKey, "wrong-secret", good, toSign, false},
		{"truncated signature", docKey, docSecret, good[:len(good)-1], toSign, false},
		{"signature only", docKey, docSecret, sig, toSign, false},
		{"key only", docKey, docSecret, docKey + ":", toSign, false},
		{"empty", docKey, docSecret, "", toSign, false},
		{"extra byte", docKey, docSecret, good + "0", toSign, false},
		{"padded", docKey, docSecret, " " + good, toSign, false},
		{"other socket", docKey, docSecret, good, "1234.5678:private-foobar", false},
		{"other channel", docKey, docSecret, good, "1234.1234:private-foobaz", false},
		{"presence signature without channel data", docKey, docSecret,
			docKey + ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c", "1234.1234:presence-foobar", false},
		{"presence channel data re-serialised", docKey, docSecret,
			docKey + ":afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
			`1234.1234:presence-foobar:{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := VerifyAuth(tc.key, tc.secret, tc.auth, tc.toSign); got != tc.want {
				t.Errorf("VerifyAuth(%q, %q, %q, %q) = %v, want %v", tc.key, tc.secret, tc.auth, tc.toSign, got, tc.want)
			}
		})
	}
}

func TestSplitAuth(t *testing.T) {
	tests := []struct {
		auth, key, sig string
		ok             bool
	}{
		{"k:s", "k", "s", true},
		{"k:s:t", "k", "s:t", true},
		{":s", "", "s", true},
		{"k:", "k", "", true},
		{"ks", "ks", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		key, sig, ok := SplitAuth(tc.auth)
		if key != tc.key || sig != tc.sig || ok != tc.ok {
			t.Errorf("SplitAuth(%q) = %q, %q, %v; want %q, %q, %v", tc.auth, key, sig, ok, tc.key, tc.sig, tc.ok)
		}
	}
}
