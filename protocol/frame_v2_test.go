package protocol

import "testing"

// TestResumeSuccessAsOutFrame: resume_success written into one buffer is the frame
// OutFrame writes with the data as a JSON string, for data that needs escaping too.
func TestResumeSuccessAsOutFrame(t *testing.T) {
	for _, data := range []string{
		`{"recovered":[],"failed":[]}`,
		`{"recovered":[{"channel":"orders","source":"hot","replayed":3,"position":{"stream_id":"s","serial":9}}],"failed":[]}`,
		`{"failed":[{"channel":"a\"b\\c\u2028é","code":"stream_reset","reason":"<&>"}]}`,
		"",
	} {
		for _, v := range []Version{V1, V2} {
			want := OutFrame{Event: v.EventName(EventResumeSuccess), Data: Str(data)}.Bytes()
			if got := ResumeSuccess(v, []byte(data)); string(got) != string(want) {
				t.Errorf("ResumeSuccess(%v, %q) = %s, want %s", v, data, got, want)
			}
		}
	}
}
