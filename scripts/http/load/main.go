// A keep-alive HTTP/1.1 load generator (wrk-like) for scripts/http_bench.sh:
// C connections, each sending GET / and reading the response, for D seconds.
// Prints requests/second. Usage: load ADDR C SECONDS
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"io"
)

func main() {
	addr := os.Args[1]
	c, _ := strconv.Atoi(os.Args[2])
	secs, _ := strconv.Atoi(os.Args[3])
	var n, errs int64
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				atomic.AddInt64(&errs, 1)
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			for time.Now().Before(deadline) {
				if _, err := conn.Write(req); err != nil {
					atomic.AddInt64(&errs, 1)
					return
				}
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					atomic.AddInt64(&errs, 1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				atomic.AddInt64(&n, 1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("requests=%d errors=%d req_per_s=%.0f\n", n, errs, float64(n)/float64(secs))
}
