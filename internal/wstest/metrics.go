package wstest

import (
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of wsd's /metrics, by metric family name.
type Metrics map[string]*dto.MetricFamily

var metricsClient = &http.Client{Timeout: DefaultTimeout}

// ScrapeMetrics reads and parses http://adminAddr/metrics.
func ScrapeMetrics(adminAddr string) (Metrics, error) {
	resp, err := metricsClient.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

// Scrape is ScrapeMetrics that fails the test on error.
func Scrape(t testing.TB, adminAddr string) Metrics {
	t.Helper()
	m, err := ScrapeMetrics(adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Get returns the value of the first sample of name whose labels include
// the given name, value pairs (a histogram's value is its sample count),
// or -1 if there is none.
func (m Metrics) Get(name string, labels ...string) float64 {
	f := m[name]
	if f == nil {
		return -1
	}
next:
	for _, s := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.GetCounter().GetValue()
		case s.Gauge != nil:
			return s.GetGauge().GetValue()
		case s.Histogram != nil:
			return float64(s.GetHistogram().GetSampleCount())
		}
	}
	return -1
}
