package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// HMACHex returns the lowercase hex HMAC-SHA256 of msg keyed with secret.
func HMACHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelStringToSign is what a channel authorization signs: "socket_id:channel" for private
// and encrypted channels, "socket_id:channel:channel_data" for presence channels, where
// channel_data is the exact string the client sent.
func ChannelStringToSign(socketID, channel, channelData string, presence bool) string {
	if presence {
		return socketID + ":" + channel + ":" + channelData
	}
	return socketID + ":" + channel
}

// UserStringToSign is what a user sign-in signs: "socket_id::user::user_data".
func UserStringToSign(socketID, userData string) string {
	return socketID + "::user::" + userData
}

// AuthToken is the "key:signature" value an auth endpoint returns for a string to sign.
func AuthToken(key, secret, stringToSign string) string {
	return key + ":" + HMACHex(secret, stringToSign)
}

// VerifyAuth checks a "key:signature" auth value against the expected one for stringToSign,
// comparing the whole value in constant time.
func VerifyAuth(key, secret, auth, stringToSign string) bool {
	want := AuthToken(key, secret, stringToSign)
	return hmac.Equal([]byte(auth), []byte(want))
}

// SplitAuth splits an auth value into its key and signature parts.
func SplitAuth(auth string) (key, signature string, ok bool) {
	return strings.Cut(auth, ":")
}
