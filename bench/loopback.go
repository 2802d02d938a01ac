package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
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
			return netip.AddrPort{}, fmt.Errorf("config: URL port %q is not valid", p)
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
		if !a.Unmap().IsLoopback() {
			return netip.AddrPort{}, fmt.Errorf("%s resolves to %s: %w; the bench sends load only to 127.0.0.0/8 or ::1", host, a, ErrNotLoopback)
		}
	}
	pick := addrs[0].Unmap()
	if family.IsValid() {
		for _, a := range addrs {
			if a.Unmap().Is4() == family.Is4() {
				pick = a.Unmap()
				break
			}
		}
		if pick.Is4() != family.Is4() {
			return netip.AddrPort{}, fmt.Errorf("config: Sources are %s addresses but %s has no address of that family", familyName(family), host)
		}
	}
	return netip.AddrPortFrom(pick, uint16(port)), nil
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
			return fmt.Errorf("config: Sources[%d] %s: %w", i, a, ErrNotLoopback)
		}
		if a.Is4() != srcs[0].Is4() {
			return fmt.Errorf("config: Sources mix IPv4 and IPv6 (%s and %s)", srcs[0], a)
		}
	}
	return nil
}
