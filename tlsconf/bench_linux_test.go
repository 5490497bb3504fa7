package tlsconf

import (
	"crypto/tls"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU is the CPU time of the calling OS thread
// (CLOCK_THREAD_CPUTIME_ID).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// BenchmarkHandshake: a full TLS handshake against a resumed one, over
// loopback TCP. ns/op and allocs/op count both ends; server-µs/op is the
// CPU time of the server's side alone (its goroutine locked to a thread).
func BenchmarkHandshake(b *testing.B) {
	cfg := testConfig(b, "a.example")
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// Go's default key exchange on TLS 1.3 is the hybrid X25519MLKEM768,
	// which a resumed handshake makes too (psk_dhe_ke); X25519 alone is
	// what most clients offer today.
	for _, v := range append(versions, struct {
		name string
		v    uint16
	}{"TLS1.3-X25519", tls.VersionTLS13}) {
		for _, resume := range []bool{false, true} {
			name := v.name + "/full"
			if resume {
				name = v.name + "/resumed"
			}
			b.Run(name, func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				cpu := make(chan time.Duration)
				go func() {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					for {
						nc, err := ln.Accept()
						if err != nil {
							return
						}
						start := threadCPU()
						tc := tls.Server(nc, s.ServerConfig())
						err = tc.Handshake()
						if err == nil {
							_, err = tc.Write([]byte("x"))
						}
						used := threadCPU() - start
						nc.Close()
						if err != nil {
							b.Error(err)
						}
						cpu <- used
					}
				}()
				cache := tls.NewLRUClientSessionCache(1)
				cli := resumingClient("a.example", v.v, nil)
				if v.name == "TLS1.3-X25519" {
					cli.CurvePreferences = []tls.CurveID{tls.X25519}
				}
				if resume {
					cli.ClientSessionCache = cache
				}
				var server time.Duration
				first := true // takes the first ticket, not counted
				b.ReportAllocs()
				for first || b.Loop() {
					nc, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						b.Fatal(err)
					}
					tc := tls.Client(nc, cli)
					if err := tc.Handshake(); err != nil {
						b.Fatal(err)
					}
					if _, err := tc.Read(make([]byte, 1)); err != nil {
						b.Fatal(err)
					}
					nc.Close()
					used := <-cpu
					if first {
						first = false
						b.ResetTimer()
						continue
					}
					if tc.ConnectionState().DidResume != resume {
						b.Fatalf("resumed: %v", !resume)
					}
					server += used
				}
				b.ReportMetric(float64(server.Nanoseconds())/1e3/float64(b.N), "server-µs/op")
			})
		}
	}
}
