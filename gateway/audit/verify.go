package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
)

// MaxLineBytes is the longest line Verify reads; a longer one is reported as
// broken (a record is normally well under a few KiB).
const MaxLineBytes = 64 << 20

// VerifyResult is what Verify found. Chain problems are reported here, not
// as errors: the error return of Verify is for I/O failures only.
type VerifyResult struct {
	// OK is true when every line is a record whose hash is correct and
	// which follows the previous record (seq+1, prev_hash = its hash).
	OK bool `json:"ok"`
	// Records is the number of intact records (before the break, if any).
	Records int `json:"records"`
	// FirstSeq and LastSeq are the seq of the first and last intact record.
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	// LastHash is the hash of the last intact record: the value to anchor
	// the next file of the chain or to compare with a copy kept elsewhere.
	LastHash string `json:"last_hash,omitempty"`
	// Anchored is true when the input starts mid-chain (a file rotated out
	// of a longer chain): its first record's prev_hash, Anchor, is accepted
	// as given. Records before it are in an earlier file.
	Anchored bool   `json:"anchored,omitempty"`
	Anchor   string `json:"anchor,omitempty"`
	// Restarts are the lines where a new chain begins (seq 1, genesis
	// prev_hash, after other records of the same input): a process restart on
	// the stdout sink whose output was collected into one file. A restart is
	// accepted when the previous chain ended with a close record
	// (MethodAuditClose, written by Close); otherwise the input is broken
	// there — removing a middle range and re-chaining the rest from genesis
	// looks exactly like that — unless VerifyOptions.AllowRestarts is set.
	// File sinks continue the chain across restarts and never restart it.
	// The first line of a later file passed to VerifyFiles must continue the
	// chain instead.
	Restarts []int `json:"restarts,omitempty"`
	// Unclosed are the Restarts not preceded by a close record (a crash, or
	// records removed), accepted only with AllowRestarts.
	Unclosed []int `json:"unclosed,omitempty"`
	// BrokenLine is the first line (1-based) that is not intact, BrokenFile
	// its file (VerifyFile, VerifyFiles), Reason why.
	BrokenLine int    `json:"broken_line,omitempty"`
	BrokenFile string `json:"broken_file,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// String is the human report of `mandate audit verify`, for example
// "ok: 1234 records, chain intact" or
// "broken at line 57: hash mismatch (record edited?)".
func (v VerifyResult) String() string {
	var s strings.Builder
	if !v.OK {
		s.WriteString("broken at ")
		if v.BrokenFile != "" {
			s.WriteString(v.BrokenFile)
			s.WriteString(" ")
		}
		fmt.Fprintf(&s, "line %d: %s", v.BrokenLine, v.Reason)
		if v.Records > 0 {
			fmt.Fprintf(&s, " (%d records before it are intact)", v.Records)
		}
		return s.String()
	}
	fmt.Fprintf(&s, "ok: %d records", v.Records)
	switch {
	case v.Records > 0 && len(v.Restarts) == 0:
		fmt.Fprintf(&s, " (seq %d-%d), chain intact", v.FirstSeq, v.LastSeq)
	case v.Records > 0:
		s.WriteString(", chains intact")
	}
	if v.Anchored {
		fmt.Fprintf(&s, "; starts mid-chain, anchored at prev_hash %s (earlier records are in a rotated file)", short(v.Anchor))
	}
	if len(v.Restarts) > 0 {
		fmt.Fprintf(&s, "; a new chain starts at line")
		if len(v.Restarts) > 1 {
			s.WriteString("s")
		}
		for i, l := range v.Restarts {
			if i > 0 {
				s.WriteString(",")
			}
			fmt.Fprintf(&s, " %d", l)
		}
		if len(v.Unclosed) == 0 {
			s.WriteString(" (a restart after a clean shutdown)")
		} else {
			s.WriteString(" (process restart on the stdout sink?); without a close record before line")
			if len(v.Unclosed) > 1 {
				s.WriteString("s")
			}
			for i, l := range v.Unclosed {
				if i > 0 {
					s.WriteString(",")
				}
				fmt.Fprintf(&s, " %d", l)
			}
			s.WriteString(" (a crash, or records removed: accepted by --allow-restarts)")
		}
	}
	return s.String()
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// Verify checks the hash chain of an audit log read from r.
//
// Every line must be a JSON object ending with a "hash" member; its hash
// must equal hex(SHA-256(prev_hash || the line with the hash member
// removed)), its seq must be the previous seq + 1 and its prev_hash the
// previous record's hash. The first record may be a genesis record (seq 1,
// prev_hash all zeros) or start mid-chain (see VerifyResult.Anchored).
//
// What the chain proves: no record was edited, inserted, deleted or moved
// after it was written, except at the end — removing the last records of a
// file leaves a shorter valid chain. To detect that, and wholesale
// rewrites by someone who recomputes every hash, compare LastHash with a
// copy kept outside the host (Logger.Head; Close and Reopen log it).
func Verify(r io.Reader) (VerifyResult, error) {
	return VerifyWith(r, VerifyOptions{})
}

// VerifyOptions relax Verify.
type VerifyOptions struct {
	// AllowRestarts accepts a new chain (seq 1, genesis prev_hash) in the
	// middle of the input even when the previous chain did not end with a
	// close record: a stdout sink collected across a crash, or logs written
	// before close records existed. Such restarts are listed in
	// VerifyResult.Unclosed. `mandate audit verify --allow-restarts`.
	AllowRestarts bool
}

// VerifyWith is Verify with options.
func VerifyWith(r io.Reader, opts VerifyOptions) (VerifyResult, error) {
	v := newVerifier(opts)
	if err := v.read(r, ""); err != nil {
		return v.res, err
	}
	return v.finish(), nil
}

// VerifyFile is Verify on the file at path; `mandate audit verify FILE`.
func VerifyFile(path string) (VerifyResult, error) {
	return VerifyFiles(path)
}

// VerifyFiles verifies one chain that spans files in order (rotated files
// oldest first, then the current one): the first record of each file must
// follow the last record of the previous file.
func VerifyFiles(paths ...string) (VerifyResult, error) {
	return VerifyFilesWith(VerifyOptions{}, paths...)
}

// VerifyFilesWith is VerifyFiles with options.
func VerifyFilesWith(opts VerifyOptions, paths ...string) (VerifyResult, error) {
	v := newVerifier(opts)
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return v.res, fmt.Errorf("audit: %w", err)
		}
		err = v.read(f, p)
		f.Close()
		if err != nil {
			return v.res, err
		}
		if !v.res.OK {
			break
		}
	}
	return v.finish(), nil
}

type verifier struct {
	opts      VerifyOptions
	res       VerifyResult
	h         hash.Hash
	seen      bool
	last      uint64
	prev      string
	prevClose bool // the previous record is a close record
	broken    bool
}

func newVerifier(opts VerifyOptions) *verifier {
	return &verifier{opts: opts, res: VerifyResult{OK: true}, h: sha256.New()}
}

func (v *verifier) finish() VerifyResult { return v.res }

func (v *verifier) fail(file string, line int, reason string) {
	v.broken = true
	v.res.OK = false
	v.res.BrokenFile = file
	v.res.BrokenLine = line
	v.res.Reason = reason
}

// read checks the lines of one input; it stops at the first broken line.
func (v *verifier) read(r io.Reader, file string) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= MaxLineBytes {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			if len(long) > MaxLineBytes {
				v.fail(file, n, fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
				return nil
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("audit: reading %s: %w", nameOr(file), err)
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		v.check(file, n, line)
		if v.broken || errors.Is(err, io.EOF) {
			return nil
		}
	}
}

func nameOr(file string) string {
	if file == "" {
		return "input"
	}
	return file
}

// check verifies one line against the chain so far.
func (v *verifier) check(file string, n int, line []byte) {
	rec, reason := parseLine(v.h, line)
	if reason != "" {
		v.fail(file, n, reason)
		return
	}
	switch {
	case !v.seen:
		if rec.prev == GenesisHash {
			if rec.seq != 1 {
				v.fail(file, n, fmt.Sprintf("seq %d has the genesis prev_hash (want seq 1)", rec.seq))
				return
			}
		} else {
			v.res.Anchored = true
			v.res.Anchor = rec.prev
		}
		v.res.FirstSeq = rec.seq
	case rec.seq == 1 && rec.prev == GenesisHash && n > 1:
		// A new chain inside one input (stdout collected across restarts).
		// Between files given to VerifyFiles the chain must continue.
		if !v.prevClose {
			if !v.opts.AllowRestarts {
				v.fail(file, n, fmt.Sprintf("a new chain starts here, but the chain before it (seq %d) did not end with a close record "+
					"(records removed and the rest re-chained? or a crash of a stdout sink: --allow-restarts accepts that)", v.last))
				return
			}
			v.res.Unclosed = append(v.res.Unclosed, n)
		}
		v.res.Restarts = append(v.res.Restarts, n)
	case rec.seq != v.last+1:
		v.fail(file, n, fmt.Sprintf("seq %d follows seq %d (record deleted, inserted or reordered?)", rec.seq, v.last))
		return
	case rec.prev != v.prev:
		v.fail(file, n, "prev_hash does not match the previous record's hash (record deleted, inserted or reordered?)")
		return
	}
	v.seen = true
	v.prevClose = isCloseRecord(line)
	v.last = rec.seq
	v.prev = rec.hash
	v.res.Records++
	v.res.LastSeq = rec.seq
	v.res.LastHash = rec.hash
}

// closeMember is how a close record's method appears in its line.
var closeMember = []byte(`,"method":"` + MethodAuditClose + `"`)

// isCloseRecord reports whether line (an intact record) is a close record.
// The byte check is a cheap filter; decoding confirms that the top-level
// method is the close method (the text could sit inside another value).
func isCloseRecord(line []byte) bool {
	if !bytes.Contains(line, closeMember) {
		return false
	}
	var r struct {
		Method string `json:"method"`
	}
	return json.Unmarshal(line, &r) == nil && r.Method == MethodAuditClose
}

// chainRecord is the chain part of one line.
type chainRecord struct {
	seq        uint64
	prev, hash string
}

const (
	hashMember = `,"hash":"`
	prevMember = `,"prev_hash":"`
	seqMember  = `,"seq":`
)

// parseLine checks that line is a well-formed record whose hash matches its
// content, and returns its chain members; reason says what is wrong.
//
// A record is a valid JSON object ending with the members
// ,"seq":N,"prev_hash":"P","hash":"H"} exactly as Log writes them. Because
// the line is valid JSON and the tail contains no brackets, these are
// top-level members and the last of their names, so any JSON reader sees
// the same values; reading them from the tail avoids decoding the record.
func parseLine(h hash.Hash, line []byte) (chainRecord, string) {
	if len(line) == 0 {
		return chainRecord{}, "empty line"
	}
	cut := len(line) - len(hashMember) - 64 - 2
	if cut <= 0 || !bytes.HasSuffix(line, []byte(`"}`)) || string(line[cut:cut+len(hashMember)]) != hashMember {
		return chainRecord{}, "not an audit record: no trailing \"hash\" member (line truncated or edited?)"
	}
	sum := line[cut+len(hashMember) : len(line)-2]
	if !isHex(sum) {
		return chainRecord{}, "not an audit record: hash is not 64 lowercase hex digits"
	}
	rest := line[:cut]
	pcut := len(rest) - len(prevMember) - 64 - 1
	if pcut <= 0 || rest[len(rest)-1] != '"' || string(rest[pcut:pcut+len(prevMember)]) != prevMember {
		return chainRecord{}, "not an audit record: no \"prev_hash\" member before \"hash\""
	}
	prev := rest[pcut+len(prevMember) : len(rest)-1]
	if !isHex(prev) {
		return chainRecord{}, "prev_hash is not 64 lowercase hex digits"
	}
	rest = rest[:pcut]
	i := bytes.LastIndex(rest, []byte(seqMember))
	if i < 0 {
		return chainRecord{}, "not an audit record: no \"seq\" member before \"prev_hash\""
	}
	seq, err := strconv.ParseUint(string(rest[i+len(seqMember):]), 10, 64)
	if err != nil {
		return chainRecord{}, "not an audit record: seq is not an unsigned integer"
	}
	if !json.Valid(line) {
		return chainRecord{}, "not valid JSON (record edited or truncated?)"
	}
	h.Reset()
	h.Write(prev)
	h.Write(line[:cut])
	h.Write([]byte{'}'})
	var got [64]byte
	var buf [sha256.Size]byte
	hex.Encode(got[:], h.Sum(buf[:0]))
	if string(got[:]) != string(sum) {
		return chainRecord{}, "hash mismatch (record edited?)"
	}
	return chainRecord{seq: seq, prev: string(prev), hash: string(sum)}, ""
}

func isHex(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// tail is the end of an existing audit file, for resuming its chain.
type tail struct {
	size     int64
	found    bool // a record was found
	seq      uint64
	hash     string
	torn     bool // the file does not end with a newline
	onlyTorn bool // the file is one incomplete line
	skipped  int  // lines after the last record that are not records
}

// maxTailLines bounds how many non-record lines at the end of a file are
// skipped when looking for the last record.
const maxTailLines = 16

// readTail finds the last record of f, reading backwards from the end.
func readTail(f *os.File) (tail, error) {
	st, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	t := tail{size: st.Size()}
	if t.size == 0 {
		return t, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], t.size-1); err != nil {
		return t, err
	}
	end := t.size // exclusive end of the candidate line
	if last[0] == '\n' {
		end--
	} else {
		t.torn = true
	}
	h := sha256.New()
	for i := 0; i < maxTailLines; i++ {
		start, line, err := lineBefore(f, end)
		if err != nil {
			return t, err
		}
		if rec, reason := parseLine(h, line); reason == "" {
			t.found, t.seq, t.hash = true, rec.seq, rec.hash
			return t, nil
		}
		if t.torn && i == 0 && start == 0 {
			t.onlyTorn = true
			return t, nil
		}
		t.skipped++
		if start == 0 {
			break
		}
		end = start - 1
	}
	return t, nil
}

// lineBefore returns the line that ends at end (exclusive) and its start.
func lineBefore(f io.ReaderAt, end int64) (int64, []byte, error) {
	const chunk = 32 << 10
	var line []byte
	pos := end
	for pos > 0 {
		n := int64(chunk)
		if n > pos {
			n = pos
		}
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, pos-n); err != nil {
			return 0, nil, err
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			return pos - n + int64(i) + 1, append(buf[i+1:], line...), nil
		}
		line = append(buf, line...)
		pos -= n
		if int64(len(line)) > MaxLineBytes {
			return 0, nil, errors.New("last line longer than " + strconv.Itoa(MaxLineBytes) + " bytes")
		}
	}
	return 0, line, nil
}
