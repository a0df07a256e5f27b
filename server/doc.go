// Package server assembles a wsd process from one Config: App builds the
// TLS certificate, the chat page (package web) and the cluster bridge
// (package cluster) without binding anything (New, which wsd -t stops
// after), then opens the client listener, accepts connections on the
// reactor (package poller) and hands them to the session Hub (package
// session), and serves the admin HTTP API (package admin) (Start). Drain
// takes it down the way a load balancer can follow and Close releases the
// rest. cmd/wsd turns flags into the Config; internal/testserver starts
// the same App in-process on port 0.
package server
