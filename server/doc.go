// Package server assembles wsd: it opens the listening socket, accepts
// connections on the reactor (package poller) and hands them to the session
// Hub (package session), and drains it all on shutdown. cmd/wsd turns
// flags into a Config; tests start a Server in-process on port 0.
package server
