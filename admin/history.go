package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsd-chat/wsd/session"
)

// HistoryStatus is the history store as the admin server reports it.
type HistoryStatus struct {
	// State is "ok" while the store orders messages; anything else names
	// what is wrong (the store's own word for it).
	State string
	// Metrics are the store's own figures, exported as wsd_history_NAME.
	Metrics []HistoryMetric
}

// HistoryMetric is one of the store's figures.
type HistoryMetric struct {
	Name    string // wsd_history_<Name>
	Help    string
	Counter bool // a counter (Name should end in _total); else a gauge
	Value   float64
}

// historyCollector exports the Hub's side of its Log (session.Stats.Log*)
// and the store's own figures as wsd_history_*.
type historyCollector struct {
	stats  *session.Stats
	status func() HistoryStatus
}

// hdesc describes the metric wsd_history_NAME.
func hdesc(name, help string, labels ...string) *prometheus.Desc {
	return desc("history_"+name, help, labels...)
}

var (
	descHDelivered  = hdesc("delivered_total", "Room messages the history store delivered to this box (every box's).")
	descHStale      = hdesc("stale_total", "Of them, delivered again (after a reconnect) and dropped.")
	descHJoins      = hdesc("joins_total", "v1 joins by where they were answered from: ring (the hot copy in memory) or store (a read of the store).", "from")
	descHReadErrors = hdesc("read_errors_total", "Reads of the store for a join that failed (answered from memory alone).")
	descHTimeouts   = hdesc("read_timeouts_total", "Joins whose read of the store did not answer in time (answered from memory alone).")
	descHShed       = hdesc("reads_shed_total", "Joins that needed the store while its readers were busy and the queue full (answered from memory alone, not read).")
	descHWaiting    = hdesc("reads_waiting", "Joins waiting for a read of the store now (queued or reading).")
	descHSeeded     = hdesc("seeded_total", "Messages a read of the store put in memory (the room's latest), so the next joins are served from memory.")
	descHWrites     = hdesc("writes_failed_total", "Room messages the store failed to take: delivered on this box alone under a box-local epoch.")
	descHLocal      = hdesc("local_epochs_total", "Times a room went over to a box-local epoch because the store failed.")
	descHDups       = hdesc("duplicates_total", "Sends the store answered as duplicates (same sender and id within its window).")
	descHResets     = hdesc("resets_total", "Times the store said this box's copy may have a hole (the copy is dropped and read again).")
	descHAcks       = hdesc("acks_dropped_total", "Acks not sent because the sender closed or was replaced before the store answered.")
	descHBus        = hdesc("bus_room_messages_dropped_total", "Room messages from the cluster bus dropped: with a store, rooms travel only through it.")
	descHUp         = hdesc("up", "1 while the history store orders messages.")
)

func (c *historyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHDelivered, descHStale, descHJoins, descHReadErrors, descHTimeouts, descHShed, descHWaiting, descHSeeded, descHWrites,
		descHLocal, descHDups, descHResets, descHAcks, descHBus, descHUp} {
		ch <- d
	}
}

func (c *historyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats
	gauge, counter := metricSink(ch).gauge, metricSink(ch).counter
	counter(descHDelivered, s.LogDelivered.Load())
	counter(descHStale, s.LogStale.Load())
	counter(descHJoins, s.LogRingHits.Load(), "ring")
	counter(descHJoins, s.LogReads.Load(), "store")
	counter(descHReadErrors, s.LogReadErrors.Load())
	counter(descHTimeouts, s.LogReadTimeouts.Load())
	counter(descHShed, s.LogReadsShed.Load())
	gauge(descHWaiting, s.LogReadsWaiting.Load())
	counter(descHSeeded, s.LogSeeded.Load())
	counter(descHWrites, s.LogWritesFailed.Load())
	counter(descHLocal, s.LogLocalEpochs.Load())
	counter(descHDups, s.LogDuplicates.Load())
	counter(descHResets, s.LogResets.Load())
	counter(descHAcks, s.LogAcksDropped.Load())
	counter(descHBus, s.LogBusDropped.Load())
	st := c.status()
	up := int64(0)
	if st.State == "ok" {
		up = 1
	}
	gauge(descHUp, up)
}

// storeCollector exports the store's own figures, which only the store
// knows: an unchecked collector (Describe sends nothing), so its set may
// be whatever the store reports.
type storeCollector struct{ status func() HistoryStatus }

func (c *storeCollector) Describe(chan<- *prometheus.Desc) {}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.status().Metrics {
		kind := prometheus.GaugeValue
		if m.Counter {
			kind = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(hdesc(m.Name, m.Help), kind, m.Value)
	}
}
