package poller

// Bind associates d with fd and h without registering fd with epoll:
// Notify and Submit still run h on the workers, but no readiness event
// will. Tests use it to drive a Handler by notifications alone.
func (r *Reactor) Bind(d *Desc, fd int, h Handler) {
	d.fd, d.h, d.r = int32(fd), h, r
}
