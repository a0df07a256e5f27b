package server

import (
	"github.com/wsd-chat/wsd/admin"
	"github.com/wsd-chat/wsd/chat"
)

// HistoryReporter is a chat.Log that reports its state and its own
// figures to the admin server (/healthz, /readyz, /stats and the
// wsd_history_* metrics).
type HistoryReporter interface {
	HistoryStatus() admin.HistoryStatus
}

// historyStatus is admin.Options.History for log: nil without one; "ok"
// always for a Log that does not report.
func historyStatus(log chat.Log) func() admin.HistoryStatus {
	switch r := log.(type) {
	case nil:
		return nil
	case HistoryReporter:
		return r.HistoryStatus
	}
	return func() admin.HistoryStatus { return admin.HistoryStatus{State: "ok"} }
}
