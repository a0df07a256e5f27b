// Command baseline is the reference wsd is measured against: the original
// design, kept small. net/http + gorilla/websocket, one reading goroutine
// and one writing goroutine with a 256-frame channel per connection, a
// mutex-guarded map of key → connection, the same protocol (same-key
// replacement with 4001, broadcast to all including the sender, one gzip
// per broadcast shared by gzip-capable peers, ping/pong).
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	sendQueue = 256
	readLimit = 1 << 20
	writeWait = 10 * time.Second
)

type client struct {
	conn *websocket.Conn
	gzip bool
	send chan *frame
	once sync.Once
}

type frame struct {
	typ  int
	data []byte
}

type hub struct {
	mu      sync.Mutex
	clients map[string]*client
}

func (h *hub) add(key string, c *client) {
	h.mu.Lock()
	old := h.clients[key]
	h.clients[key] = c
	h.mu.Unlock()
	if old != nil {
		old.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "replaced"), time.Now().Add(time.Second))
		old.stop()
	}
}

func (h *hub) remove(key string, c *client) {
	h.mu.Lock()
	if h.clients[key] == c {
		delete(h.clients, key)
	}
	h.mu.Unlock()
}

func (c *client) stop() { c.once.Do(func() { close(c.send) }) }

func (h *hub) broadcast(text []byte) {
	plain := &frame{websocket.TextMessage, text}
	var zipped *frame
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, c := range h.clients {
		f := plain
		if c.gzip {
			if zipped == nil {
				var b bytes.Buffer
				w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
				w.Write(text)
				w.Close()
				zipped = &frame{websocket.BinaryMessage, b.Bytes()}
			}
			f = zipped
		}
		select {
		case c.send <- f:
		default: // slow consumer: drop it, as the gorilla chat example does
			delete(h.clients, key)
			c.stop()
		}
	}
}

func (c *client) writeLoop() {
	defer c.conn.Close()
	for f := range c.send {
		c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := c.conn.WriteMessage(f.typ, f.data); err != nil {
			return
		}
	}
	c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
}

func (h *hub) serve(up *websocket.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		key := r.URL.Query().Get("specialKey")
		if key == "" {
			http.Error(w, "missing specialKey", http.StatusBadRequest)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn.SetReadLimit(readLimit)
		c := &client{conn: conn, gzip: r.URL.Query().Get("support_gzip") == "1", send: make(chan *frame, sendQueue)}
		h.add(key, c)
		go c.writeLoop()
		defer func() {
			h.remove(key, c)
			c.stop()
		}()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.BinaryMessage {
				zr, err := gzip.NewReader(bytes.NewReader(msg))
				if err != nil {
					return
				}
				var b bytes.Buffer
				if _, err := b.ReadFrom(zr); err != nil {
					return
				}
				msg = b.Bytes()
			}
			h.broadcast(msg)
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8889", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	h := &hub{clients: make(map[string]*client)}
	up := &websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: func(*http.Request) bool { return true }}
	fmt.Fprintf(os.Stderr, "level=INFO msg=listening addr=%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, h.serve(up)))
}
