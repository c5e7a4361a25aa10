// Command fakeserver stands in for tritonserver in internal/tritonci's own
// tests: built as <venv>/.../bin/tritonserver, it takes Triton's port flags,
// listens on the three ports (exiting with Triton's message when one is taken),
// answers the readiness endpoints, and starts a "stub": a child in its process
// group named with a shared-memory region it makes in the test's shm folder, as
// the Python backend does. FAKE_TRITON=ignore-term makes it ignore SIGTERM.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "stub" {
		// The stub: wait to be killed.
		for {
			time.Sleep(time.Hour)
		}
	}
	var ports [3]string
	for _, a := range os.Args[1:] {
		for i, name := range []string{"--grpc-port=", "--http-port=", "--metrics-port="} {
			if v, ok := strings.CutPrefix(a, name); ok {
				ports[i] = v
			}
		}
	}
	var lis [3]net.Listener
	for i, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err != nil {
			fmt.Printf("E0000 main.cc:245] \"failed to start service: Unavailable - Socket '127.0.0.1:%s' already in use \"\n", p)
			os.Exit(1)
		}
		lis[i] = l
	}
	// The region, then the stub that names it.
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	region := "triton_python_backend_shm_region_" + hex.EncodeToString(b)
	path := filepath.Join(os.Getenv("FAKE_TRITON_SHM_DIR"), region)
	if err := os.WriteFile(path, make([]byte, 4096), 0o644); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	stub := exec.Command(os.Args[0], "stub", region)
	if err := stub.Start(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	mux.HandleFunc("/v2/health/ready", ok)
	mux.HandleFunc("/v2/models/fish_classifier/ready", ok)
	mux.HandleFunc("/v2", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `{"version":"0.0.fake"}`) })
	go func() { _ = http.Serve(lis[1], mux) }()
	go func() {
		for {
			c, err := lis[0].Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	fmt.Println("fake tritonserver ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	for range sig {
		if os.Getenv("FAKE_TRITON") == "ignore-term" {
			fmt.Println("SIGTERM ignored")
			continue
		}
		// A clean exit: the stub stopped, its region removed.
		_ = stub.Process.Kill()
		_ = stub.Wait()
		_ = os.Remove(path)
		os.Exit(0)
	}
}
