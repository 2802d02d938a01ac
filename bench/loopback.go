package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"
)

// resolveLoopback resolves u's host to the address to dial. An IP literal
// must be loopback; a name must resolve to loopback addresses only, so
// that no DNS answer can send the load elsewhere. When family is valid, an
// address of its family is preferred.
func resolveLoopback(ctx context.Context, u *url.URL, family netip.Addr) (netip.AddrPort, error) {
	host := u.Hostname()
	port := 80
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return netip.AddrPort{}, fmt.Errorf("port %q is not valid", p)
		}
		port = n
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		found, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
		}
		addrs = found
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: no address", host)
	}
	for _, a := range addrs {
		if a.Unmap().IsLoopback() {
			continue
		}
		if a.String() == host {
			return netip.AddrPort{}, fmt.Errorf("%s is %w; the bench sends load only to 127.0.0.0/8 or ::1", host, ErrNotLoopback)
		}
		return netip.AddrPort{}, fmt.Errorf("%s resolves to %s, which is %w; the bench sends load only to 127.0.0.0/8 or ::1", host, a, ErrNotLoopback)
	}
	var cands []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); !family.IsValid() || a.Is4() == family.Is4() {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return netip.AddrPort{}, fmt.Errorf("the sources are %s addresses but %s has no address of that family", familyName(family), host)
	}
	// A name such as localhost has an IPv4 and an IPv6 address, and the hub
	// may listen on one only: pick the first that accepts a connection.
	if len(cands) > 1 {
		var d net.Dialer
		for _, a := range cands {
			ap := netip.AddrPortFrom(a, uint16(port))
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := d.DialContext(dctx, "tcp", ap.String())
			cancel()
			if err == nil {
				c.Close()
				return ap, nil
			}
		}
	}
	return netip.AddrPortFrom(cands[0], uint16(port)), nil
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// checkSources refuses sources that are not loopback or not all of one
// family.
func checkSources(srcs []netip.Addr) error {
	for i, a := range srcs {
		if !a.IsLoopback() {
			return configErrorf("Sources[%d] %s is %w", i, a, ErrNotLoopback)
		}
		if a.Is4() != srcs[0].Is4() {
			return configErrorf("Sources mix IPv4 and IPv6 (%s and %s)", srcs[0], a)
		}
	}
	return nil
}
