package testkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// AnswerThenClose reads one HTTP response from c and then requires the server to close the
// connection. It returns the response status. The read deadline is a hang guard of a
// minute, not a measurement.
func AnswerThenClose(c net.Conn) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, fmt.Errorf("read the answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		return resp.StatusCode, fmt.Errorf("connection still open after the %d answer: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}
