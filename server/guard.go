package server

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
)

// maxTracked bounds the per-principal rate limiters and used jti values
// kept in memory; past it, idle or expired entries are dropped first.
const maxTracked = 100_000

// guard enforces the limits of the limits section and single-use tokens.
// Each refusal is a problem the caller writes.
type guard struct {
	trusted         []netip.Prefix
	maxPerPrincipal int
	maxPerIP        int
	rate            rate.Limit
	burst           int
	jtiOnce         bool

	mu         sync.Mutex
	principals map[string]int
	ips        map[netip.Addr]int
	limiters   map[string]*rate.Limiter
	jtis       map[string]time.Time // jti -> when it may be forgotten
}

func newGuard(cfg *config.Config) *guard {
	g := &guard{
		maxPerPrincipal: *cfg.Limits.StreamsPerPrincipal,
		maxPerIP:        *cfg.Limits.StreamsPerIP,
		rate:            rate.Limit(*cfg.Limits.PublishRate),
		burst:           cfg.Limits.PublishBurst,
		jtiOnce:         cfg.Auth.JTIOnce,
		principals:      make(map[string]int),
		ips:             make(map[netip.Addr]int),
		limiters:        make(map[string]*rate.Limiter),
		jtis:            make(map[string]time.Time),
	}
	for _, c := range cfg.Limits.TrustedProxies {
		if p, err := netip.ParsePrefix(c); err == nil { // Validate checked it
			g.trusted = append(g.trusted, p.Masked())
		}
	}
	return g
}

// principalKey names a principal for limits and idempotency keys (see
// auth.Principal.Key); anonymous callers have none.
func principalKey(p *auth.Principal) string {
	if p.Anonymous {
		return ""
	}
	return p.Key()
}

// clientIP returns the client's address: the TCP peer, or, when the peer
// is a trusted proxy, the right-most X-Forwarded-For address that is not a
// trusted proxy (the left-most when all are), since a client can put
// anything it likes on the left.
func (g *guard) clientIP(r *http.Request) netip.Addr {
	ip := peerAddr(r)
	if !g.isTrusted(ip) {
		return ip
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip // a malformed chain: trust only what we saw
		}
		ip = a.Unmap()
		if !g.isTrusted(ip) {
			return ip
		}
	}
	return ip
}

// peerAddr returns the address of r's TCP peer.
func peerAddr(r *http.Request) netip.Addr {
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return peer.Addr().Unmap()
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// clientAddressMode says where client addresses come from, for /readyz:
// "peer" (the TCP peer) or "x-forwarded-for" (from the trusted proxies).
func (g *guard) clientAddressMode() string {
	if len(g.trusted) == 0 {
		return "peer"
	}
	return "x-forwarded-for"
}

func (g *guard) isTrusted(ip netip.Addr) bool {
	for _, p := range g.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// openStream counts a stream against its principal and address, or
// refuses it with 429 too_many_streams. release must be called once the
// stream ends.
func (g *guard) openStream(principal string, ip netip.Addr) (release func(), prob *policy.Problem) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if principal != "" && g.maxPerPrincipal > 0 && g.principals[principal] >= g.maxPerPrincipal {
		return nil, g.tooMany(fmt.Sprintf("this principal already holds %d streams, the limit", g.maxPerPrincipal))
	}
	if g.maxPerIP > 0 && g.ips[ip] >= g.maxPerIP {
		return nil, g.tooMany(fmt.Sprintf("this address already holds %d streams, the limit", g.maxPerIP))
	}
	if principal != "" {
		g.principals[principal]++
	}
	g.ips[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if principal != "" {
				if g.principals[principal]--; g.principals[principal] <= 0 {
					delete(g.principals, principal)
				}
			}
			if g.ips[ip]--; g.ips[ip] <= 0 {
				delete(g.ips, ip)
			}
		})
	}, nil
}

func (g *guard) tooMany(detail string) *policy.Problem {
	prob := policy.NewProblem(http.StatusTooManyRequests, policy.CodeTooManyStreams, detail+"; close one first")
	prob.RetryAfter = 10 * time.Second
	return prob
}

// allowPublish spends one token of the principal's bucket, or refuses with
// 429 rate_limited and a Retry-After of when the next token comes.
func (g *guard) allowPublish(principal string, now time.Time) *policy.Problem {
	if g.rate <= 0 || principal == "" {
		return nil
	}
	g.mu.Lock()
	lim := g.limiters[principal]
	if lim == nil {
		if len(g.limiters) >= maxTracked {
			for k, l := range g.limiters { // drop the idle ones: their buckets are full
				if l.TokensAt(now) >= float64(g.burst) {
					delete(g.limiters, k)
				}
			}
		}
		lim = rate.NewLimiter(g.rate, g.burst)
		g.limiters[principal] = lim
	}
	g.mu.Unlock()
	res := lim.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay == 0 {
		return nil
	}
	res.CancelAt(now)
	prob := policy.Errorf(http.StatusTooManyRequests, policy.CodeRateLimited,
		"this principal may publish %g events per second (bursts of %d)", float64(g.rate), g.burst)
	prob.RetryAfter = time.Duration(math.Max(float64(delay), float64(time.Second)))
	return prob
}

// useJTI records a publisher token's jti, or refuses the token when its
// jti was used before (auth.jti_once) or it has none.
func (g *guard) useJTI(p *auth.Principal, now time.Time) *policy.Problem {
	if !g.jtiOnce || p.Anonymous || p.Source != "jwt" {
		return nil
	}
	if p.ID == "" {
		return policy.NewProblem(http.StatusUnauthorized, policy.CodeTokenInvalid, "publisher tokens must carry a jti on this server")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// A jti is unique only among one issuer's tokens for one subject:
	// keyed globally, one principal could spend another's.
	id := p.Key() + "\x00" + p.ID
	if _, used := g.jtis[id]; used {
		return policy.NewProblem(http.StatusUnauthorized, policy.CodeTokenInvalid, "this token was already used; publisher tokens are single-use here")
	}
	if len(g.jtis) >= maxTracked {
		for k, until := range g.jtis {
			if now.After(until) {
				delete(g.jtis, k)
			}
		}
		if len(g.jtis) >= maxTracked {
			return policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "too many single-use tokens in flight")
		}
	}
	g.jtis[id] = p.Expires.Add(time.Minute) // past exp (and leeway) the token fails anyway
	return nil
}

// forgetJTI undoes useJTI for a publish that stored nothing.
func (g *guard) forgetJTI(p *auth.Principal) {
	if !g.jtiOnce || p.ID == "" {
		return
	}
	g.mu.Lock()
	delete(g.jtis, p.Key()+"\x00"+p.ID)
	g.mu.Unlock()
}
