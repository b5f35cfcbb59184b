package audit

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
)

// BenchmarkEncode is the cost of encoding one typical record.
func BenchmarkEncode(b *testing.B) {
	r := sampleRecord(1)
	r.Time = fixedTime
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendBody(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkLog is the hot-path cost of Log to a discarding stdout sink:
// encode, chain hash, hand-off to the writer goroutine and back.
func BenchmarkLog(b *testing.B) {
	l, err := New(Config{}, Options{Stdout: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	r := sampleRecord(1)
	r.Time = fixedTime
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Log(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLogParallel shows batching under concurrent callers.
func BenchmarkLogParallel(b *testing.B) {
	l, err := New(Config{}, Options{Stdout: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		r := sampleRecord(1)
		r.Time = fixedTime
		for pb.Next() {
			if err := l.Log(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLogFile measures the file sink with each fsync policy, with
// concurrent callers (as in the gateway).
func BenchmarkLogFile(b *testing.B) {
	for _, mode := range []string{FsyncNone, FsyncInterval, FsyncEvery} {
		b.Run(mode, func(b *testing.B) {
			l, err := New(Config{Sink: SinkFile, Path: filepath.Join(b.TempDir(), "audit.log"), Fsync: mode}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				r := sampleRecord(1)
				for pb.Next() {
					if err := l.Log(ctx, r); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkVerify is the cost of checking one record.
func BenchmarkVerify(b *testing.B) {
	l, buf := newBufLogger(&testing.T{})
	for i := 0; i < 1000; i++ {
		l.Log(context.Background(), sampleRecord(i))
	}
	l.Close()
	data := buf.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		res, _ := Verify(bytesReader(data))
		if !res.OK {
			b.Fatal(res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
