// Go's net/http hello world, the peer of examples/http_hello.rs.
package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("Hello, World!\n"))
	})
	http.ListenAndServe(os.Args[1], nil)
}
