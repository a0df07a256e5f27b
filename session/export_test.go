package session

// insert adds c under its key and returns the connection it displaced.
func (t *table) insert(c *Conn) (old *Conn) { return t.join(c, nil) }
