// Package tlswire runs TLS for connections that live in wsd's reactor,
// without a goroutine or a buffer per idle connection. It holds the engine
// (Conn) and the handshake Pool, nothing else: the tls.Config it is given,
// certificate included, comes from package internal/certfile.
//
// A Conn wraps a crypto/tls server connection around a memory transport:
// the reactor reads ciphertext from the socket and hands it in; records
// crypto/tls produces are collected for the owner to put on its write
// queue. Nothing in here touches a socket.
//
// Handshake. The reactor buffers the client's first flight until a whole
// ClientHello is in (a client trickling it — slowloris — holds a buffer
// and nothing else), then a short-lived goroutine from a Pool runs
// tls.Conn.Handshake. Reads on that goroutine block on a channel the
// reactor signals; before blocking, the goroutine hands the records it
// wrote to the owner (Owner.FlushTLS) and gives back its CPU slot, so a
// client that stalls mid-handshake costs one parked goroutine until the
// owner's handshake timeout closes the Conn, never a CPU slot others need.
// The goroutines are bounded; when they are all taken and a handshake
// has to queue, the one parked longest gives way to it (pool.go), so
// stalled clients cannot keep honest ones waiting behind them, and CPU
// slots go to handshakes whose client answered before fresh ones. Record
// headers before the ClientHello is complete are checked as they arrive:
// one that is not a handshake record, or claims more than a record may
// hold, is refused at once (ErrNotTLS, ErrRecordOverflow).
//
// After the handshake the transport does not block. crypto/tls treats a
// net.Error whose Temporary() is true as retryable (readRecordOrCCS keeps
// c.in.err unset and the partial record stays in its rawInput), so Decrypt
// feeds what the socket gave, reads plaintext until the transport reports
// "would block", and returns; a record cut short waits inside tls.Conn for
// the rest. Seal encrypts on the caller's goroutine into the caller's
// buffer, after any records the read side produced (alerts, KeyUpdate
// replies), so records leave in sequence-number order.
//
// These behaviours of crypto/tls are not part of its API; engine_test.go
// pins each one by name, so a Go release that changes one fails there.
//
// What an idle connection keeps is tls.Conn's own state: the record-layer
// ciphers and the capacity of its rawInput and hand buffers (sized by the
// largest record or handshake message the client sent); crypto/tls offers
// no way to release them. The transport itself holds nothing while idle.
package tlswire
