// Package codec turns bytes into WebSocket messages and messages into bytes,
// without ever blocking and without holding buffers between frames.
//
// wsd reads sockets from an epoll reactor: a read returns whatever the kernel
// has, which may be half a frame header, three frames and a bit, or one byte
// of a handshake. Everything here is therefore incremental:
//
//   - Stream is an RFC 6455 frame decoder and message assembler. Feed it any
//     slice of bytes; it unmasks payload in place, validates UTF-8 as bytes
//     arrive (so invalid text fails fast, even in the middle of a frame),
//     enforces the message size cap from the declared lengths before any
//     payload is buffered, and calls its Handler once per complete data
//     message or control frame. Between calls it keeps at most a partial
//     header (a fixed array) and, only while a message spans reads, a pooled
//     message buffer.
//   - HandshakeEnd finds the end of an upgrade request accumulated from
//     several reads; Upgrader runs gobwas/ws's zero-copy upgrade on it and
//     extracts the chat parameters (specialKey, support_gzip, room) in its
//     OnRequest hook, rejecting with the right HTTP status.
//   - AppendFrame / AppendClose build server frames (never masked) into
//     caller buffers; AppendGzipFrame builds the gzip'd binary frame of a
//     broadcast (session calls it once per broadcast); Gunzip inflates a client's
//     gzip'd message under a cap so a zip bomb is a 1009, not an OOM.
//   - Reject makes a handshake refusal (an HTTP status and a reason), so
//     the packages that refuse handshakes never see gobwas/ws.
//   - permessage-deflate (RFC 7692): NegotiateDeflate answers the client's
//     offers (the Upgrader does it when its Deflate is on), Stream inflates
//     messages with RSV1 under the same cap, and AppendDeflateFrame builds a
//     broadcast's compressed frame from an empty window, once, for every
//     deflate peer. Compressors and inflaters are pooled, never held.
//
// Protocol violations are reported as *CloseError values that carry the close
// code the connection must be failed with (1002, 1003, 1007, 1009).
package codec
