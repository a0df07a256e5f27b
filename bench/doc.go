// Command bench is wsd's load client. Every scenario is bounded in
// connections and time, ends by itself and talks to loopback only.
//
//	go run ./bench idle    -addr 127.0.0.1:8888 -n 15000 -hold 10s -server-pid PID
//	go run ./bench fanout  -addr 127.0.0.1:8888 -n 5000 -gzip-frac 0.5 -m 50 -size 256
//	go run ./bench storm   -addr 127.0.0.1:8888 -n 1000 -senders 10 -duration 10s -server-pid PID
//	go run ./bench connect -addr 127.0.0.1:8888 -duration 10s
//	go run ./bench hostile -addr 127.0.0.1:8888 -server-pid PID   # attacks on memory, CPU and shared budgets, one after the other
//	go run ./bench fanout  -proto v1 -n 5000 -server-pid PID   # seed members, then as many v1 members
//	go run ./bench recover -n 2000 -m 100 -server-pid PID       # v1 clients drop, miss -m, reconnect with since
//	go run ./bench presence -n 10000 -joins 1000 -server-pid PID # presence frames per member under join churn
//	go run ./bench rooms   -n 1000 -rooms 1,10,100 -server-pid PID # bytes per subscription, fan-out cost
//	go run ./bench idle    -proto v1 -rooms 5 -n 10000 -hold 3s -server-pid PID # RSS per v1 connection in 5 shared rooms
//	go run ./bench compare [-quick] [-out FILE]   # wsd against the baseline, one table
//	go run ./bench cluster -boxes 3 -n 3000       # 3 wsd boxes joined by NATS against one box
//	go run ./bench cluster-scale -n 54000         # 54,000 connections over 3 boxes, one global broadcast
//	go run ./bench rolling -boxes 3 -n 3000 -rooms 30 [-kill] [-box-flags "-history-jetstream"] # each box restarted in turn under v1 chat
//
// The files split by concern: flags.go (settings), dialer.go (bounded
// concurrent dialer, frames), payload.go (message format, checks, gunzip),
// recv.go (receivers, latency), v1.go (chat protocol v1 commands and
// envelopes), idle.go, fanout.go, storm.go, connect.go, recover.go,
// presence.go, rooms.go, rolling.go (on the Go client, package client),
// hostile.go (scenarios; the hostile scenario also in hostile_attacks.go,
// hostile_fair.go, hostile_chat.go, hostile_report.go), report.go (table,
// JSON),
// progress.go, procstat.go (/proc; RSS from internal/rsswatch),
// metrics.go (wsd's /metrics), compare.go (wsd vs baseline).
package main
