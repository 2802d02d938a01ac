package hub_test

import (
	"context"
	"fmt"

	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// Example publishes one event and receives it on a subscriber: the
// publish returns once the store committed the event, and the subscriber
// gets the event's wire form, encoded once for every subscriber.
func Example() {
	h := hub.New(hub.Options{Store: memory.New(store.Retention{})})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	sub, err := h.Subscribe([]string{"news"})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	sub.GoLive("") // no history to replay: live from now

	res, err := h.Publish(context.Background(), store.Record{Topic: "news", Type: "headline", Data: "sseguard ships"})
	if err != nil {
		panic(err)
	}
	fmt.Println("stored as", res[0].Event.ID)

	<-sub.Ready()
	frames, cut := sub.Take(nil)
	for _, f := range frames {
		fmt.Printf("%s", f.Wire)
	}
	fmt.Println("cut off:", cut)

	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// stored as 1
	// id: 1
	// event: headline
	// data: sseguard ships
	//
	// cut off: false
}
