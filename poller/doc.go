// Package poller is wsd's reactor: a few epoll instances watch every socket,
// and a fixed pool of workers runs whatever became ready. No goroutine is
// tied to a connection, so goroutines do not grow with connections.
//
// Sockets are registered once, edge-triggered, for input, output and
// hang-up (mailru/easygo's netpoll.Epoll on file descriptors wsd owns: its
// Handle helpers would dup every fd and put sockets back in blocking mode).
// An epoll event never runs user code on the epoll goroutine: it marks the
// socket's Desc pending and queues the Desc once. A worker then calls the
// Desc's Handler with every event that accumulated, and re-runs it if more
// arrived meanwhile. So a Handler is never run concurrently with itself,
// and an edge is never lost between "read returned EAGAIN" and "went idle".
//
// Anything else that must run on a worker (wsd's broadcast fan-out per
// session shard) is a Task submitted to the same queue.
package poller
