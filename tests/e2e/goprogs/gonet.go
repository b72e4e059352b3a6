// gonet: a Go net/http server and client for the "mesh every binary" tests
// (built by the tests with CGO_ENABLED=0: static, no libc, the shim cannot
// reach it; only ldmesh-run's seccomp path meshes it).
//
//	gonet serve ADDR          HTTP server: "/" answers "go remote=R path=P",
//	                          "/spawn?url=U" runs `gonet get U` as a child
//	                          process and answers with its output
//	gonet get URL             GET URL, prints "status=N" and the body
//	gonet dial ADDR TIMEOUT   net.DialTimeout, prints "connected local=L
//	                          remote=R" or "error: ..."
//	gonet load URL N          N GETs with keep-alive, then N without, prints
//	                          "ok=K"
//	gonet bench URL SECONDS CONCURRENCY keepalive|close
//	                          CONCURRENCY goroutines GET URL for SECONDS,
//	                          with keep-alive or a new connection per
//	                          request, prints "requests=N errors=E rps=R
//	                          p50_ms=X p99_ms=Y" (tests/bench)
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"time"
)

func serve(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go remote=%s path=%s\n", r.RemoteAddr, r.URL.Path)
	})
	mux.HandleFunc("/spawn", func(w http.ResponseWriter, r *http.Request) {
		out, err := exec.Command(os.Args[0], "get", r.URL.Query().Get("url")).CombinedOutput()
		if err != nil {
			fmt.Fprintf(w, "child failed: %v\n", err)
		}
		w.Write(out)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())
	http.Serve(ln, mux)
}

func get(url string) int {
	c := &http.Client{Timeout: 20 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	fmt.Printf("status=%d\n%s", r.StatusCode, b)
	return 0
}

func dial(addr, timeout string) int {
	d, err := time.ParseDuration(timeout)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("connected local=%s remote=%s\n", c.LocalAddr(), c.RemoteAddr())
	c.Close()
	return 0
}

func load(url string, n int) int {
	ok := 0
	for _, keep := range []bool{true, false} {
		c := &http.Client{Timeout: 20 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: !keep}}
		for i := 0; i < n; i++ {
			r, err := c.Get(url)
			if err != nil {
				fmt.Println("error:", err)
				continue
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == 200 {
				ok++
			}
		}
	}
	fmt.Printf("ok=%d\n", ok)
	return 0
}

// bench: CONCURRENCY goroutines, each issuing GETs one after another until
// SECONDS have passed; errors are failed requests and non-200 answers,
// latencies those of the successful requests.
func bench(url string, secs float64, conc int, mode string) int {
	if secs <= 0 || conc <= 0 || (mode != "keepalive" && mode != "close") {
		fmt.Println("error: usage: gonet bench URL SECONDS CONCURRENCY keepalive|close")
		return 2
	}
	tr := &http.Transport{DisableKeepAlives: mode == "close",
		MaxIdleConns: conc, MaxIdleConnsPerHost: conc}
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	start := time.Now()
	end := start.Add(time.Duration(secs * float64(time.Second)))
	lats := make([][]time.Duration, conc)
	errs := make([]int, conc)
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for time.Now().Before(end) {
				t0 := time.Now()
				r, err := c.Get(url)
				if err != nil {
					errs[g]++
					continue
				}
				_, err = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if err != nil || r.StatusCode != 200 {
					errs[g]++
					continue
				}
				lats[g] = append(lats[g], time.Since(t0))
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	var all []time.Duration
	nerr := 0
	for g := 0; g < conc; g++ {
		all = append(all, lats[g]...)
		nerr += errs[g]
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)))
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i]) / float64(time.Millisecond)
	}
	fmt.Printf("requests=%d errors=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
		len(all), nerr, float64(len(all))/elapsed, pct(0.50), pct(0.99))
	return 0
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gonet serve ADDR | get URL | dial ADDR TIMEOUT | load URL N | "+
			"bench URL SECONDS CONCURRENCY keepalive|close")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "get":
		os.Exit(get(os.Args[2]))
	case "dial":
		os.Exit(dial(os.Args[2], os.Args[3]))
	case "load":
		n, _ := strconv.Atoi(os.Args[3])
		os.Exit(load(os.Args[2], n))
	case "bench":
		if len(os.Args) < 6 {
			fmt.Fprintln(os.Stderr, "usage: gonet bench URL SECONDS CONCURRENCY keepalive|close")
			os.Exit(2)
		}
		secs, _ := strconv.ParseFloat(os.Args[3], 64)
		conc, _ := strconv.Atoi(os.Args[4])
		os.Exit(bench(os.Args[2], secs, conc, os.Args[5]))
	}
	os.Exit(2)
}
