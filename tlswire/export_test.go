package tlswire

import "time"

// SetStallGrace shortens StallGrace for p, so tests need not wait it out.
func (p *Pool) SetStallGrace(d time.Duration) {
	p.mu.Lock()
	p.grace = d
	p.mu.Unlock()
}
