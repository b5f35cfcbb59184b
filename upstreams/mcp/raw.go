package mcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// RawPost sends one JSON-RPC message, as bytes, on this session's upstream
// MCP session (its Mcp-Session-Id and protocol version, the user's platform
// token via the credentials transport, trace context) and returns the
// upstream's HTTP response unread. It is the gateway's fast path for
// tools/call: no decoding or re-encoding of the message on either leg.
// The caller owns the response body (bounded by max_result_bytes).
//
// The message must not be one go-sdk's client session tracks (its ids are
// the caller's business: use ids that cannot collide with go-sdk's integer
// ids, e.g. strings).
func (s *session) RawPost(ctx context.Context, body []byte) (*http.Response, error) {
	if err := s.bind(ctx); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		cs, err := s.conn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := s.rawPost(ctx, cs, body)
		// 404 on a session id: the upstream forgot the session (it
		// restarted, or expired it) and did not run the message. Reconnect
		// and send it once more, as the go-sdk path does.
		if err == nil && resp.StatusCode == http.StatusNotFound && cs.ID() != "" && try == 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			s.a.log.Info("upstream forgot the session (HTTP 404); reconnecting")
			s.drop(cs)
			continue
		}
		return resp, err
	}
}

func (s *session) rawPost(ctx context.Context, cs *sdk.ClientSession, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.a.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if id := cs.ID(); id != "" {
		req.Header.Set("Mcp-Session-Id", id)
	}
	v := s.version
	if ir := cs.InitializeResult(); ir != nil && ir.ProtocolVersion != "" {
		v = ir.ProtocolVersion
	}
	req.Header.Set("Mcp-Protocol-Version", v)
	resp, err := s.http.Do(req)
	var rerr *redirectError
	if errors.As(err, &rerr) {
		jerr := s.a.redirectError("", rerr)
		s.a.record(outcomeFailure, jerr)
		return nil, jerr
	}
	return resp, err
}
