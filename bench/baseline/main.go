// Command baseline is the reference wsd is measured against: the original
// design, kept small. net/http + gorilla/websocket, one reading goroutine
// and one writing goroutine with a 256-frame channel per connection, a
// mutex-guarded map of key → connection, and the same protocol: same-key
// replacement with close 4001, every text message broadcast to every
// client including the sender, gzip built once per broadcast and shared by
// the gzip-capable peers (binary frame), ping → pong, read limit 1 MiB.
//
//	go run ./bench/baseline -addr 127.0.0.1:0
//	go run ./bench/baseline -addr 127.0.0.1:0 -tls-cert c.pem -tls-key k.pem   # wss://
//
// When ready it prints "level=INFO msg=listening addr=HOST:PORT" on stderr.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	sendQueue = 256     // frames buffered per connection
	readLimit = 1 << 20 // largest message, also after gunzip
	writeWait = 10 * time.Second
)

// Close codes the baseline sends besides gorilla's echo of a client close.
const (
	codeReplaced = 4001
	codeSlow     = websocket.ClosePolicyViolation
)

// frame is one outbound data message; a broadcast's frames are shared by
// every recipient and never modified.
type frame struct {
	typ  int
	data []byte
}

type client struct {
	conn *websocket.Conn
	gzip bool
	send chan *frame
	once sync.Once
	code int // close code the writer sends after the queue, 0 for none
}

// stop ends the client's writer once: it drains what is queued, sends a
// close frame with code (if not 0) and closes the socket. Callers must not
// send on c.send afterwards; only broadcast sends, under the hub lock, to
// clients still in the map.
func (c *client) stop(code int) {
	c.once.Do(func() {
		c.code = code
		close(c.send)
	})
}

func (c *client) writeLoop() {
	defer c.conn.Close()
	for f := range c.send {
		c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(f.typ, f.data); err != nil {
			return
		}
	}
	if c.code != 0 {
		c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, ""), time.Now().Add(time.Second))
	}
}

type hub struct {
	mu      sync.Mutex
	clients map[string]*client
}

func newHub() *hub { return &hub{clients: make(map[string]*client)} }

func (h *hub) add(key string, c *client) {
	h.mu.Lock()
	old := h.clients[key]
	h.clients[key] = c
	if old != nil {
		old.stop(codeReplaced)
	}
	h.mu.Unlock()
}

func (h *hub) remove(key string, c *client) {
	h.mu.Lock()
	if h.clients[key] == c {
		delete(h.clients, key)
	}
	c.stop(0)
	h.mu.Unlock()
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

func gzipOf(text []byte) []byte {
	var b bytes.Buffer
	w := gzipWriters.Get().(*gzip.Writer)
	w.Reset(&b)
	w.Write(text)
	w.Close()
	gzipWriters.Put(w)
	return b.Bytes()
}

// broadcast queues text for every client; the gzip frame is built at most
// once. A client whose queue is full is dropped (close 1008), as in the
// gorilla chat example.
func (h *hub) broadcast(text []byte) {
	plain := &frame{websocket.TextMessage, text}
	var zipped *frame
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, c := range h.clients {
		f := plain
		if c.gzip {
			if zipped == nil {
				zipped = &frame{websocket.BinaryMessage, gzipOf(text)}
			}
			f = zipped
		}
		select {
		case c.send <- f:
		default:
			delete(h.clients, key)
			c.stop(codeSlow)
		}
	}
}

// gunzip decodes a gzip'd text message sent as a binary frame.
func gunzip(msg []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(zr, readLimit+1)); err != nil {
		return nil, err
	}
	if b.Len() > readLimit {
		return nil, fmt.Errorf("message over %d bytes after gunzip", readLimit)
	}
	return b.Bytes(), nil
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	key := q.Get("specialKey")
	if key == "" {
		http.Error(w, "missing specialKey", http.StatusBadRequest)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(readLimit)
	c := &client{conn: conn, gzip: q.Get("support_gzip") == "1", send: make(chan *frame, sendQueue)}
	go c.writeLoop()
	h.add(key, c)
	defer h.remove(key, c)
	for {
		typ, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			if msg, err = gunzip(msg); err != nil {
				return
			}
		}
		h.broadcast(msg)
	}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8889", "listen `host:port`")
	certFile := flag.String("tls-cert", "", "serve wss:// with this PEM certificate `file` (net/http's TLS: crypto/tls on each connection's goroutine)")
	keyFile := flag.String("tls-key", "", "private key for -tls-cert, a PEM `file`")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "level=INFO msg=listening addr=%s\n", ln.Addr())
	if *certFile != "" {
		err = http.ServeTLS(ln, newHub(), *certFile, *keyFile)
	} else {
		err = http.Serve(ln, newHub())
	}
	fmt.Fprintln(os.Stderr, "baseline:", err)
	os.Exit(1)
}
