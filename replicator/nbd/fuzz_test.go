package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
)

// streamConn is a connection whose client side is a fixed byte stream:
// reads come from it, writes are kept.
type streamConn struct {
	r  *bytes.Reader
	mu sync.Mutex
	w  bytes.Buffer
}

func (c *streamConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
func (c *streamConn) Close() error { return nil }

const (
	fuzzDevSize    = 64 << 10
	fuzzMaxRequest = 16 << 10
)

// FuzzRequest feeds arbitrary request streams to a server. It must never
// panic, never touch the device out of range (the device panics), answer
// every complete request before the end of the stream, a DISC, or a
// request it cannot parse exactly once, and answer with success only
// requests that are valid.
func FuzzRequest(f *testing.F) {
	req := func(r Request, payload int) []byte {
		if r.Magic == 0 {
			r.Magic = RequestMagic
		}
		return append(AppendRequest(nil, r), make([]byte, payload)...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(req(Request{Type: CmdWrite, Cookie: 1, Offset: 512, Length: 1024}, 1024), req(Request{Type: CmdRead, Cookie: 2, Offset: 0, Length: 4096}, 0)))
	f.Add(cat(req(Request{Type: CmdWrite, Flags: FlagFUA, Cookie: 1, Length: 512}, 512), req(Request{Type: CmdFlush, Cookie: 2}, 0), req(Request{Type: CmdDisc, Cookie: 3}, 0)))
	f.Add(cat(req(Request{Type: CmdTrim, Cookie: 1, Offset: 4096, Length: 8192}, 0), req(Request{Type: CmdWriteZeroes, Cookie: 2, Offset: 0, Length: 65536}, 0)))
	f.Add(cat(req(Request{Type: CmdRead, Cookie: 1, Offset: fuzzDevSize - 512, Length: 1024}, 0), req(Request{Type: CmdWrite, Cookie: 2, Length: fuzzMaxRequest + 512}, fuzzMaxRequest+512)))
	f.Add(cat(req(Request{Type: CmdRead, Cookie: 1, Length: 512}, 0), req(Request{Magic: 0xdeadbeef, Type: CmdRead, Cookie: 2, Length: 512}, 0)))
	f.Add(cat(req(Request{Type: CmdCache, Cookie: 1, Length: 512}, 0), req(Request{Type: 42, Cookie: 2}, 0)))
	f.Add(req(Request{Type: CmdWrite, Cookie: 1, Length: 4096}, 100))
	f.Fuzz(func(t *testing.T, stream []byte) {
		// Frame the stream as the protocol does, giving the requests
		// unique cookies (their number) so that replies can be matched:
		// these are the requests the server must answer.
		stream = bytes.Clone(stream)
		var reqs []Request
		rest := stream
		wantErr := error(nil)
		for len(rest) > 0 {
			if len(rest) < RequestSize {
				wantErr = io.ErrUnexpectedEOF
				break
			}
			binary.BigEndian.PutUint64(rest[8:], uint64(len(reqs)))
			r, err := ParseRequest(rest)
			if errors.Is(err, ErrBadMagic) {
				wantErr = ErrBadMagic
				break
			}
			if errors.Is(err, ErrUnknownCommand) {
				wantErr = ErrUnknownCommand
				break
			}
			rest = rest[RequestSize:]
			if r.Type == CmdDisc {
				break
			}
			if r.Type == CmdWrite {
				if uint64(len(rest)) < uint64(r.Length) {
					wantErr = io.ErrUnexpectedEOF
					break
				}
				rest = rest[r.Length:]
			}
			reqs = append(reqs, r)
		}

		dev := trimDevice{newMemDevice(fuzzDevSize)}
		srv, err := NewServer(dev, ServerOptions{MaxRequest: fuzzMaxRequest, MaxBuffered: 4 * fuzzMaxRequest, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		conn := &streamConn{r: bytes.NewReader(stream)}
		serr := srv.Serve(context.Background(), conn)

		switch {
		case wantErr == nil && serr != nil,
			wantErr != nil && !errors.Is(serr, wantErr) && !(errors.Is(wantErr, io.ErrUnexpectedEOF) && serr != nil):
			t.Fatalf("Serve: %v, want %v", serr, wantErr)
		}

		out := conn.w.Bytes()
		answered := make([]bool, len(reqs))
		for len(out) > 0 {
			rep, err := ParseReply(out)
			if err != nil {
				t.Fatalf("reply after %d bytes of output: %v", len(conn.w.Bytes())-len(out), err)
			}
			out = out[ReplySize:]
			if rep.Cookie >= uint64(len(reqs)) || answered[rep.Cookie] {
				t.Fatalf("reply to cookie %d: no such request, or answered twice", rep.Cookie)
			}
			answered[rep.Cookie] = true
			r := reqs[rep.Cookie]
			if rep.Error == 0 {
				if !validRequest(r) {
					t.Fatalf("invalid request %+v answered with success", r)
				}
				if r.Type == CmdRead {
					if uint64(len(out)) < uint64(r.Length) {
						t.Fatalf("read reply with %d of %d bytes", len(out), r.Length)
					}
					out = out[r.Length:]
				}
			}
		}
		for i, ok := range answered {
			if !ok {
				t.Fatalf("request %d (%+v) not answered", i, reqs[i])
			}
		}
		if st := srv.Stats(); st.InFlight != 0 || st.Buffered != 0 || st.Connections != 0 {
			t.Fatalf("stats after Serve: %+v", st)
		}
	})
}

// validRequest is the fuzz oracle: what a successful request must be.
func validRequest(r Request) bool {
	inRange := r.Length > 0 && r.Offset < fuzzDevSize && uint64(r.Length) <= fuzzDevSize-r.Offset
	if r.Flags&^(FlagFUA|FlagNoHole) != 0 {
		return false
	}
	switch r.Type {
	case CmdRead, CmdWrite:
		return inRange && r.Length <= fuzzMaxRequest
	case CmdTrim, CmdWriteZeroes:
		return inRange
	case CmdFlush:
		return true
	}
	return false
}
