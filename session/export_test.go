package session

// insert adds c under its key and returns the connection it displaced.
func (t *table) insert(c *Conn) (old *Conn) { return t.join(c, nil) }

// lookup returns the connection holding key, if any.
func (t *table) lookup(key string) *Conn {
	s := t.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byKey[key]
}
