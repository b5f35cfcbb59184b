package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

var (
	_ upstreams.RawCaller    = (*session)(nil)
	_ upstreams.RawForwarder = (*Adapter)(nil)
)

// ForwardsRaw implements upstreams.RawForwarder: every session of the mcp
// adapter forwards tools/call messages as bytes (CallToolRaw).
func (a *Adapter) ForwardsRaw() bool { return true }

// CallToolRaw implements upstreams.RawCaller: the gateway's fast path for
// tools/call. The message goes as bytes on this session's upstream MCP
// session (its Mcp-Session-Id and protocol version, the user's platform
// token via the credentials transport, trace context), inside do, like
// CallTool: the same identity check, timeout, retry of a call the upstream
// provably did not run (HTTP 404 on the session id), health accounting,
// max_result_bytes bound and error mapping. A call whose context ends
// before its answer is cancelled upstream with notifications/cancelled
// (go-sdk does that for CallTool).
func (s *session) CallToolRaw(ctx context.Context, name string, id, body []byte) (upstreams.RawResult, error) {
	return do(s, ctx, "tools/call", name, false, func(ctx context.Context, cs *sdk.ClientSession) (upstreams.RawResult, error) {
		res, err := s.rawCall(ctx, cs, id, body)
		if err != nil && ctx.Err() != nil {
			s.cancelRaw(ctx, cs, id)
		}
		return res, err
	})
}

func (s *session) rawCall(ctx context.Context, cs *sdk.ClientSession, id, body []byte) (upstreams.RawResult, error) {
	resp, err := s.rawPost(ctx, cs, body)
	if err != nil {
		return upstreams.RawResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && cs.ID() != "" {
		// The upstream forgot the session (it restarted or expired it)
		// and did not run the message: do reconnects and sends it again.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return upstreams.RawResult{}, sdk.ErrSessionMissing
	}
	if resp.StatusCode != http.StatusOK {
		// The status is in the call state: mapError reports it.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return upstreams.RawResult{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	ct := resp.Header.Get("Content-Type")
	var msg []byte
	stream := mediaType(ct, "text/event-stream")
	switch {
	case stream:
		msg, err = s.readEvent(resp.Body, id)
	case mediaType(ct, "application/json"):
		msg, err = io.ReadAll(resp.Body)
	default:
		return upstreams.RawResult{}, fmt.Errorf("unexpected content type %q", ct)
	}
	if err != nil {
		return upstreams.RawResult{}, err
	}
	return decodeRaw(msg, id, stream)
}

// mediaType reports whether the Content-Type value ct is of media type mt
// (parameters aside), without mime.ParseMediaType's allocations.
func mediaType(ct, mt string) bool {
	if len(ct) < len(mt) || !strings.EqualFold(ct[:len(mt)], mt) {
		return false
	}
	rest := strings.TrimLeft(ct[len(mt):], " \t")
	return rest == "" || rest[0] == ';'
}

// rawEnvelope is the part of a JSON-RPC response the raw path reads.
// Its byte fields alias the decoded message (no copies).
type rawEnvelope struct {
	ID     rawBytes `json:"id"`
	Result rawBytes `json:"result"`
	Error  *struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// rawBytes keeps a JSON value as the bytes of the message it came from
// (json.Unmarshal hands UnmarshalJSON a subslice of its input).
type rawBytes []byte

func (r *rawBytes) UnmarshalJSON(b []byte) error { *r = b; return nil }

// decodeRaw reads the response to request id: its result and whether the
// result is a tool error, or the JSON-RPC error the upstream answered.
// The common answer (valid JSON, plain keys, a result object) is read
// without allocating; anything else takes encoding/json, which also gives
// the precise error.
func decodeRaw(msg, id []byte, stream bool) (upstreams.RawResult, error) {
	if res, ok := scanRaw(msg, id); ok {
		res.EventStream = stream
		return res, nil
	}
	var env rawEnvelope
	if err := json.Unmarshal(msg, &env); err != nil {
		return upstreams.RawResult{}, fmt.Errorf("the response is not valid JSON: %w", err)
	}
	if !bytes.Equal(env.ID, id) {
		return upstreams.RawResult{}, errors.New("the response's id is not the request's")
	}
	if env.Error != nil {
		return upstreams.RawResult{}, &jsonrpc.Error{Code: env.Error.Code, Message: env.Error.Message, Data: env.Error.Data}
	}
	if len(env.Result) == 0 || env.Result[0] != '{' {
		return upstreams.RawResult{}, errors.New("the response has no result object")
	}
	var r struct {
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(env.Result, &r); err != nil {
		return upstreams.RawResult{}, fmt.Errorf("the result is not a tool result: %w", err)
	}
	return upstreams.RawResult{Result: env.Result, IsError: r.IsError, EventStream: stream}, nil
}

// rawPost posts one JSON-RPC message on cs's upstream session and returns
// the response unread; its body is bounded by max_result_bytes (the
// session transport), and its failures are recorded in ctx's call state.
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
	return s.http.Do(req)
}

// cancelRaw tells the upstream to stop a raw call whose context ended
// before its answer (the caller went away, the timeout passed, the answer
// was too large): a stateful upstream does not stop a handler when the
// POST's connection closes, only on notifications/cancelled. It is sent in
// the background, outside the call's accounting.
func (s *session) cancelRaw(ctx context.Context, cs *sdk.ClientSession, id []byte) {
	reason := "the client closed the request"
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errTimeout), errors.Is(cause, context.DeadlineExceeded):
		reason = "timed out at the gateway"
	case errors.Is(cause, errTooLarge):
		reason = "the response exceeded the gateway's size limit"
	}
	body := []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":` + string(id) + `,"reason":"` + reason + `"}}`)
	// Keep ctx's values (identity, trace) but not its call state.
	bctx := context.WithValue(context.WithoutCancel(ctx), callStateKey{}, (*callState)(nil))
	s.bg.Go(func() {
		cctx, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		resp, err := s.rawPost(cctx, cs, body)
		if err != nil {
			s.a.log.Debug("sending notifications/cancelled upstream failed", "error", err)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	})
}

// readEvent returns the data of the event that carries the response with
// id from an upstream event stream. Other events (none are expected: the
// gateway sends no progress token on this path) are dropped; relayable
// notifications among them are marked handled, so that no later call
// waits for them.
func (s *session) readEvent(body io.Reader, id []byte) ([]byte, error) {
	var wb [64]byte
	want := append(append(wb[:0], `"id":`...), id...)
	br := sseReaders.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); sseReaders.Put(br) }()
	var data, long []byte
	drop := func() {
		for _, pat := range notePatterns {
			for range bytes.Count(data, pat) {
				s.notes.handled()
			}
		}
		data = data[:0]
	}
	for {
		line, err := readLine(br, &long)
		if err != nil && err != io.EOF {
			return nil, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		case len(line) == 0:
			if bytes.Contains(data, want) {
				return data, nil
			}
			drop()
		}
		if err == io.EOF {
			break
		}
	}
	if bytes.Contains(data, want) {
		return data, nil
	}
	drop()
	return nil, errors.New("the response stream ended without a response")
}

// sseReaders are reused between calls: a bufio.Scanner per call with a
// 64 KiB buffer was most of the fast path's allocation.
var sseReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// maxSSELine bounds one line of an upstream event stream (the body is
// bounded by max_result_bytes too).
const maxSSELine = 64 << 20

// readLine returns the next line of br without its line ending ("\n" or
// "\r\n"), valid until the next call. A line longer than br's buffer is
// assembled in *long. At the end of the stream it returns the last
// (possibly empty) line with io.EOF.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	frag, err := br.ReadSlice('\n')
	line := frag
	if err == bufio.ErrBufferFull {
		*long = append((*long)[:0], frag...)
		for err == bufio.ErrBufferFull {
			if len(*long) > maxSSELine {
				return nil, fmt.Errorf("an event stream line is longer than %d bytes", maxSSELine)
			}
			frag, err = br.ReadSlice('\n')
			*long = append(*long, frag...)
		}
		line = *long
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), err
}

// scanRaw reads a successful response to request id the way decodeRaw's
// encoding/json path does (keys matched case-insensitively, the last of
// repeated keys wins), without allocating. ok is false for anything it does
// not settle: invalid JSON, keys with escapes or non-ASCII bytes, an
// error member, another id, no result object, an isError that is not a
// boolean.
func scanRaw(msg, id []byte) (res upstreams.RawResult, ok bool) {
	if !json.Valid(msg) {
		return res, false
	}
	var gotID, result, errv []byte
	if !members(msg, func(k, v []byte) {
		switch {
		case bytes.EqualFold(k, []byte("id")):
			gotID = v
		case bytes.EqualFold(k, []byte("result")):
			result = v
		case bytes.EqualFold(k, []byte("error")):
			errv = v
		}
	}) || (errv != nil && string(errv) != "null") || len(result) == 0 || result[0] != '{' || !bytes.Equal(gotID, id) {
		return res, false
	}
	isError, valid := false, true
	if !members(result, func(k, v []byte) {
		if bytes.EqualFold(k, []byte("isError")) {
			switch string(v) {
			case "true":
				isError = true
			case "false", "null":
				isError = false
			default:
				valid = false
			}
		}
	}) || !valid {
		return res, false
	}
	return upstreams.RawResult{Result: result, IsError: isError}, true
}

// members calls f with each member of the JSON object b (valid JSON, as
// json.Valid checked): its key without quotes and its value. It returns
// false when b is not an object or a key holds an escape or a non-ASCII
// byte (encoding/json decodes and folds those; the caller falls back).
func members(b []byte, f func(key, val []byte)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(b, i+1)
		}
		ke := skipString(b, i)
		key := b[i+1 : ke-1]
		for _, c := range key {
			if c == '\\' || c >= 0x80 {
				return false
			}
		}
		i = skipSpace(b, ke) + 1 // the colon
		i = skipSpace(b, i)
		ve := skipValue(b, i)
		f(key, b[i:ve])
		i = ve
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the (valid) JSON value at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
