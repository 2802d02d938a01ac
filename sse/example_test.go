package sse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/sseguard/sseguard/sse"
)

func ExampleEvent() {
	e := sse.Event{
		ID:    "42",
		Type:  "price",
		Data:  "first line\nsecond line",
		Retry: 5 * time.Second,
	}
	b, err := e.Encode()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// id: 42
	// event: price
	// retry: 5000
	// data: first line
	// data: second line
}

// Published data cannot add fields or events: each line break starts a new
// data line, so the receiver gets the payload back as the data of one event.
func ExampleEvent_AppendTo() {
	payload := "hi\n\nevent: admin\ndata: pwned"
	b, err := sse.Event{Data: payload}.AppendTo(nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))

	ev, err := sse.NewParser(strings.NewReader(string(b))).Next()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("received one %q event, data %q\n", ev.Type, ev.Data)
	// Output:
	// data: hi
	// data:
	// data: event: admin
	// data: data: pwned
	//
	// received one "message" event, data "hi\n\nevent: admin\ndata: pwned"
}

// An ID or a type cannot be split into lines, so the encoder refuses them.
func ExampleEvent_Validate() {
	err := sse.Event{ID: "7\nevent: admin", Data: "x"}.Validate()
	var fe *sse.FieldError
	fmt.Println(errors.As(err, &fe), fe.Field)
	fmt.Println(err)
	// Output:
	// true id
	// sse: invalid id field: contains '\n' at byte 1
}

func ExampleParser() {
	stream := "\uFEFF: heartbeat\n\n" +
		"id: 1\nevent: greeting\ndata: hello\ndata: world\n\n" +
		"data: no id field, so the ID persists\r\n\r\n" +
		"data: an unterminated event is dropped"

	p := sse.NewParser(strings.NewReader(stream))
	p.OnComment = func(text string) { fmt.Printf("comment %q\n", text) }
	for {
		ev, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("id=%s type=%s data=%q\n", ev.ID, ev.Type, ev.Data)
	}
	fmt.Println("last event ID:", p.LastEventID())
	// Output:
	// comment "heartbeat"
	// id=1 type=greeting data="hello\nworld"
	// id=1 type=message data="no id field, so the ID persists"
	// last event ID: 1
}

func ExampleClient() {
	c := &sse.Client{
		URL:    "https://events.example.com/events?topic=prices",
		Header: http.Header{"Authorization": {"Bearer " + os.Getenv("TOKEN")}},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	err := c.Run(ctx, func(ev sse.Event) error {
		fmt.Printf("%s %s: %s\n", ev.ID, ev.Type, ev.Data)
		return nil
	})
	var re *sse.ResponseError
	switch {
	case errors.Is(err, context.Canceled):
		// Interrupted. c.LastEventID says where to resume next time.
	case errors.Is(err, sse.ErrNoContent):
		// The server asked us to stop.
	case errors.As(err, &re):
		log.Printf("stream refused: %v: %s", re, re.Body)
	default:
		log.Print(err)
	}
}

// Run reconnects when the stream ends, and sends the ID of the last event it
// saw, so that the server can resume after it.
func ExampleClient_Run() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		switch r.Header.Get("Last-Event-ID") {
		case "":
			fmt.Fprint(w, "retry: 10\nid: 1\ndata: first\n\n") // then the stream ends
		case "1":
			fmt.Fprint(w, "id: 2\ndata: resumed after 1\n\n")
		}
	}))
	defer srv.Close()

	c := &sse.Client{URL: srv.URL}
	errDone := errors.New("done")
	err := c.Run(context.Background(), func(ev sse.Event) error {
		fmt.Println(ev.ID, ev.Data)
		if ev.ID == "2" {
			return errDone
		}
		return nil
	})
	fmt.Println(err, c.LastEventID)
	// Output:
	// 1 first
	// 2 resumed after 1
	// done 2
}
