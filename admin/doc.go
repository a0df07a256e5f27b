// Package admin is wsd's operator surface, served on its own listener away
// from the client port: Prometheus metrics, health and readiness, a JSON
// snapshot, the publish API for application backends, and pprof.
package admin
