package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wsd-chat/wsd/client"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// exampleServer runs wsd in-process on a free port for the examples.
func exampleServer() (url string, stop func()) {
	app, err := server.New(server.Config{Addr: "127.0.0.1:0", Session: session.Config{MaxDeliveryRate: -1, MaxHandshakesPerIP: -1}})
	if err != nil {
		panic(err)
	}
	if err := app.Start(); err != nil {
		panic(err)
	}
	return "ws://" + app.Server().Addr().String() + "/", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		app.Server().Shutdown(ctx)
		app.Close()
	}
}

// Two members of a room: alice sends, and bob's Events deliver the
// message with its place in the room's order.
func Example() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, err := client.Dial(ctx, url, client.Options{Key: "alice", Rooms: []string{"lobby"}})
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := client.Dial(ctx, url, client.Options{Key: "bob", Rooms: []string{"lobby"}, Gzip: true})
	if err != nil {
		panic(err)
	}
	defer bob.Close()

	ack, err := alice.Send(ctx, "lobby", "hello bob")
	if err != nil {
		panic(err)
	}
	fmt.Println("acked at seq", ack.Seq)
	for ev := range bob.Events() {
		if m, ok := ev.(*client.Message); ok {
			fmt.Printf("%s #%d %s: %s\n", m.Room, m.Seq, m.From, m.Text)
			break
		}
	}
	// Output:
	// acked at seq 1
	// lobby #1 alice: hello bob
}

// A loop that reacts to everything the client reports. It may call Send:
// the client's reader never waits for it.
func ExampleClient_Events() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Key: "echo", Rooms: []string{"lobby"}})
	if err != nil {
		panic(err)
	}
	c.Send(ctx, "lobby", "ping")
	for ev := range c.Events() {
		switch ev := ev.(type) {
		case *client.Message:
			fmt.Println("message", ev.Seq, ev.Text)
			if ev.Text == "ping" {
				c.Send(ctx, "lobby", "pong") // fine from here
			} else {
				c.Close() // Events is closed after the last StateChange
			}
		case *client.Joined:
			if ev.Rejoin && !ev.Recovered {
				fmt.Println("missed messages in", ev.Room, "- reload it")
			}
		case *client.StateChange:
			fmt.Println("state", ev.State)
		case *client.Warning:
			fmt.Println("warning", ev.Err)
		}
	}
	// Output:
	// state connected
	// message 1 ping
	// message 2 pong
	// state closed
}

// Rooms beyond the first, history, members, and a refusal as a typed
// error.
func ExampleClient_Join() {
	url, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Key: "carol"})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	j, err := c.Join(ctx, "support", client.JoinOptions{History: 20})
	if err != nil {
		panic(err)
	}
	fmt.Println("joined", j.Room, "at seq", j.Seq, "members", j.Count)
	m, _ := c.Members(ctx, "support")
	fmt.Println(m.Members)

	_, err = c.Send(ctx, "support", string(make([]byte, 2<<20)))
	var se *client.ServerError
	var ce *client.CloseError
	switch {
	case errors.As(err, &se):
		fmt.Println("refused:", se.Code)
	case errors.As(err, &ce):
		fmt.Println("closed:", ce.Code)
	default:
		fmt.Println(err)
	}
	// Output:
	// joined support at seq 0 members 1
	// [carol]
	// closed: 1009
}
