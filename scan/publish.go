package scan

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// publisher publishes the scanner's own timestamped events to a hub, so
// that arrival can be compared with the moment of sending.
type publisher struct {
	cfg   PublishConfig
	nonce string
	hc    *http.Client

	mu   sync.Mutex
	sent map[int]time.Time // seq → when the publish request started
	ids  map[int]string    // seq → the ID the hub assigned
	next int
	err  error
}

func newPublisher(c *Config) *publisher {
	var b [8]byte
	_, _ = rand.Read(b[:])
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if c.TLSConfig != nil {
		tr.TLSClientConfig = c.TLSConfig.Clone()
	}
	if c.Insecure {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	return &publisher{
		cfg:   *c.Publish,
		nonce: hex.EncodeToString(b[:]),
		hc:    &http.Client{Transport: tr, Timeout: c.Timeout},
		sent:  map[int]time.Time{},
		ids:   map[int]string{},
	}
}

// run publishes one event every cfg.Every until stopAt or ctx ends, and
// stops at the first failure, which err then reports.
func (p *publisher) run(ctx context.Context, stopAt time.Time) {
	defer p.hc.CloseIdleConnections()
	t := time.NewTicker(p.cfg.Every)
	defer t.Stop()
	for {
		if time.Now().After(stopAt) {
			return
		}
		if err := p.publish(ctx); err != nil {
			if ctx.Err() == nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *publisher) publish(ctx context.Context) error {
	p.mu.Lock()
	p.next++
	seq := p.next
	p.mu.Unlock()
	now := time.Now()
	data, _ := json.Marshal(map[string]any{"sseguard_scan": p.nonce, "seq": seq, "ts": now.UnixMilli()})
	body, _ := json.Marshal(map[string]string{"topic": p.cfg.Topic, "data": string(data)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("sseguard-scan-%s-%d", p.nonce, seq))
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	p.mu.Lock()
	p.sent[seq] = now
	p.mu.Unlock()
	res, err := p.hc.Do(req)
	if err != nil {
		p.forget(seq)
		return fmt.Errorf("publish to %s: %w", p.cfg.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode/100 != 2 {
		p.forget(seq)
		return fmt.Errorf("publish to %s: HTTP %d: %s", p.cfg.URL, res.StatusCode, strings.TrimSpace(clip(string(b), 200)))
	}
	var out struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &out)
	p.mu.Lock()
	p.ids[seq] = out.ID
	p.mu.Unlock()
	return nil
}

func (p *publisher) forget(seq int) {
	p.mu.Lock()
	delete(p.sent, seq)
	p.mu.Unlock()
}

// snapshot returns the publish times and IDs so far, and the first error.
func (p *publisher) snapshot() (map[int]time.Time, map[int]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := make(map[int]time.Time, len(p.sent))
	for k, v := range p.sent {
		sent[k] = v
	}
	ids := make(map[int]string, len(p.ids))
	for k, v := range p.ids {
		ids[k] = v
	}
	return sent, ids, p.err
}
