package policy_test

import (
	"slices"
	"testing"

	"github.com/sseguard/sseguard/policy"
)

type satisfiesCase struct {
	name string
	got  []string
	want string
	ok   bool
	// short, when set, is the expected Shortfalls, as strings.
	short []string
}

func runSatisfies(t *testing.T, header string, cases []satisfiesCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			short := policy.Shortfalls(header, tc.got, tc.want)
			if got := policy.Satisfies(header, tc.got, tc.want); got != tc.ok || got != (len(short) == 0) {
				t.Fatalf("Satisfies(%s, %q, %q) = %v, want %v; shortfalls %q", header, tc.got, tc.want, got, tc.ok, short)
			}
			if tc.short != nil {
				var texts []string
				for _, s := range short {
					texts = append(texts, s.String())
				}
				if !slices.Equal(texts, tc.short) {
					t.Errorf("shortfalls %q, want %q", texts, tc.short)
				}
			}
		})
	}
}

func TestSatisfiesCacheControl(t *testing.T) {
	strict := "no-cache, no-store, no-transform"
	runSatisfies(t, "cache-control", []satisfiesCase{
		{"same", []string{strict}, strict, true, nil},
		{"reordered", []string{"no-store, no-cache, no-transform"}, strict, true, nil},
		{"case and spaces", []string{" No-Store ,NO-CACHE,   no-transform "}, strict, true, nil},
		{"over two lines", []string{"no-store", "no-cache, no-transform"}, strict, true, nil},
		{"must-revalidate added", []string{strict + ", must-revalidate"}, strict, true, nil},
		{"stricter extras", []string{"no-cache, no-store, no-transform, private, proxy-revalidate, max-age=0, s-maxage=0"}, strict, true, nil},
		{"no-transform missing", []string{"no-cache, no-store"}, strict, false, []string{"lacks no-transform"}},
		{"nothing of it", []string{"max-age=60"}, strict, false,
			[]string{"lacks no-cache", "lacks no-store", "lacks no-transform", "adds max-age=60, which loosens it"}},
		{"public added", []string{strict + ", public"}, strict, false, []string{"adds public, which loosens it"}},
		{"must-understand added", []string{strict + ", must-understand"}, strict, false, nil},
		{"stale-while-revalidate added", []string{"no-cache, stale-while-revalidate=30"}, "no-cache", false, nil},
		{"unknown extension", []string{"no-cache, x-edge-keep=1"}, "no-cache", false, nil},
		{"qualified no-cache is weaker", []string{`no-cache="Set-Cookie"`}, "no-cache", false,
			[]string{"has no-cache=Set-Cookie where the policy wants no-cache"}},
		{"unqualified no-cache is stronger", []string{"no-cache"}, `no-cache="Set-Cookie"`, true, nil},
		{"qualified with more fields", []string{`no-cache="set-cookie, authorization"`}, `no-cache="Set-Cookie"`, true, nil},
		{"shorter max-age", []string{"max-age=30"}, "max-age=60", true, nil},
		{"longer max-age", []string{"max-age=90"}, "max-age=60", false, []string{"has max-age=90 where the policy wants max-age=60"}},
		{"quoted max-age", []string{`max-age="0"`}, "max-age=60", true, nil},
		{"conflicting repeat", []string{"no-cache, max-age=0, max-age=600"}, "no-cache", false,
			[]string{"adds max-age=0, max-age=600 (conflicting), which loosens it"}},
		{"identical repeat", []string{"no-cache", "no-cache"}, "no-cache", true, nil},
		{"no lines", nil, strict, false, []string{"lacks " + strict}},
		{"empty line", []string{""}, "no-cache", false, []string{"lacks no-cache"}},
	})
}

func TestSatisfiesContentType(t *testing.T) {
	runSatisfies(t, "Content-Type", []satisfiesCase{
		{"same", []string{"text/event-stream; charset=utf-8"}, "text/event-stream; charset=utf-8", true, nil},
		{"case and quoting", []string{`Text/Event-Stream;CHARSET="UTF-8"`}, "text/event-stream; charset=utf-8", true, nil},
		{"charset missing", []string{"text/event-stream"}, "text/event-stream; charset=utf-8", false,
			[]string{"lacks charset=utf-8"}},
		{"other charset", []string{"text/event-stream; charset=latin1"}, "text/event-stream; charset=utf-8", false,
			[]string{"has charset=latin1 where the policy wants charset=utf-8"}},
		{"charset where none is wanted", []string{"text/event-stream; charset=utf-8"}, "text/event-stream", true, nil},
		{"other type", []string{"text/plain"}, "text/event-stream", false,
			[]string{"has text/plain where the policy wants text/event-stream"}},
		{"second line wins", []string{"text/event-stream", "text/plain"}, "text/event-stream", false, nil},
		{"charset from an earlier line", []string{"text/event-stream; charset=utf-8", "text/event-stream"}, "text/event-stream; charset=utf-8", true, nil},
		{"unparsable", []string{"event-stream"}, "text/event-stream", false, nil},
		{"problem", []string{"application/problem+json"}, "application/problem+json", true, nil},
	})
}

func TestSatisfiesCSP(t *testing.T) {
	runSatisfies(t, "Content-Security-Policy", []satisfiesCase{
		{"same", []string{policy.StreamCSP}, policy.StreamCSP, true, nil},
		{"reordered, other case", []string{"FRAME-ANCESTORS 'NONE'; Default-Src 'none'"}, policy.StreamCSP, true, nil},
		{"page policy reordered", []string{"script-src 'self'; default-src 'none'; connect-src 'self'; style-src 'self'; " +
			"img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"}, policy.PageCSP, true, nil},
		{"frame-ancestors missing", []string{"default-src 'none'"}, policy.StreamCSP, false, []string{"lacks frame-ancestors 'none'"}},
		{"default-src loosened", []string{"default-src 'self'; frame-ancestors 'none'"}, policy.StreamCSP, false,
			[]string{"has default-src 'self' where the policy wants default-src 'none'"}},
		{"script-src overrides the fallback", []string{policy.StreamCSP + "; script-src *"}, policy.StreamCSP, false,
			[]string{"has script-src * where the policy wants script-src 'none'"}},
		{"worker-src through child-src", []string{policy.StreamCSP + "; child-src https:"}, policy.StreamCSP, false, nil},
		{"stricter default-src", []string{"default-src 'none'"}, "default-src 'self'", true, nil},
		{"strict meets baseline", []string{policy.StreamCSP}, policy.BaselineCSP, true, nil},
		{"baseline does not meet strict", []string{policy.BaselineCSP}, policy.StreamCSP, false, nil},
		{"no default-src", []string{"script-src 'self'"}, "default-src 'self'", false, []string{"lacks default-src 'self'"}},
		{"extra restrictions", []string{policy.StreamCSP + "; base-uri 'none'; upgrade-insecure-requests"}, policy.StreamCSP, true, nil},
		{"frame-ancestors widened", []string{"default-src 'none'; frame-ancestors 'self'"}, policy.StreamCSP, false, nil},
		{"one of two policies suffices", []string{"default-src *", policy.StreamCSP}, policy.StreamCSP, true, nil},
		{"two policies in one line", []string{"default-src *, " + policy.StreamCSP}, policy.StreamCSP, true, nil},
		{"reporting kept", []string{"default-src 'self'; report-to csp"}, "default-src 'self'; report-to csp", true, nil},
		{"reporting lost", []string{"default-src 'self'"}, "default-src 'self'; report-to csp", false, []string{"lacks report-to csp"}},
		{"sandbox with fewer allowances", []string{"sandbox allow-forms"}, "sandbox allow-forms allow-scripts", true, nil},
		{"sandbox with more allowances", []string{"sandbox allow-scripts allow-popups"}, "sandbox allow-scripts", false, nil},
		{"nonce kept", []string{"script-src 'nonce-AbC'"}, "script-src 'nonce-AbC' 'unsafe-inline'", true, nil},
		{"nonce case matters", []string{"script-src 'nonce-abc'"}, "script-src 'nonce-AbC'", false, nil},
		{"nonce dropped, unsafe-inline kept", []string{"script-src 'unsafe-inline'"}, "script-src 'nonce-AbC' 'unsafe-inline'", false, nil},
		{"strict-dynamic dropped", []string{"script-src 'nonce-a' https:"}, "script-src 'nonce-a' 'strict-dynamic' https:", false, nil},
		{"strict-dynamic kept", []string{"script-src 'nonce-a' 'strict-dynamic' https:"}, "script-src 'strict-dynamic' https: 'nonce-a'", true, nil},
		{"none beside others", []string{"default-src 'none' 'self'"}, "default-src 'self'", true, nil},
		{"empty", []string{""}, policy.StreamCSP, false, nil},
	})
}

func TestSatisfiesTokens(t *testing.T) {
	runSatisfies(t, "Vary", []satisfiesCase{
		{"same", []string{"Origin"}, "Origin", true, nil},
		{"case", []string{"origin"}, "Origin", true, nil},
		{"more tokens", []string{"Accept-Encoding, Origin"}, "Origin", true, nil},
		{"over lines", []string{"Accept-Encoding", "Origin"}, "Origin", true, nil},
		{"star", []string{"*"}, "Origin", true, nil},
		{"missing", []string{"Accept-Encoding"}, "Origin", false, []string{"lacks Origin"}},
	})
	runSatisfies(t, "Connection", []satisfiesCase{
		{"same", []string{"Keep-Alive"}, "keep-alive", true, nil},
		{"close", []string{"close"}, "keep-alive", false, []string{"lacks keep-alive", "adds close, which loosens it"}},
		{"keep-alive and close", []string{"keep-alive, close"}, "keep-alive", false, nil},
	})
}

func TestSatisfiesExact(t *testing.T) {
	runSatisfies(t, "X-Content-Type-Options", []satisfiesCase{
		{"same", []string{"nosniff"}, "nosniff", true, nil},
		{"case and spaces", []string{" NoSniff "}, "nosniff", true, nil},
		{"twice", []string{"nosniff", "nosniff"}, "nosniff", false, nil},
		{"other", []string{"sniff"}, "nosniff", false, []string{"has sniff where the policy wants nosniff"}},
	})
	runSatisfies(t, "X-Frame-Options", []satisfiesCase{
		{"deny", []string{"deny"}, "DENY", true, nil},
		{"deny meets sameorigin", []string{"DENY"}, "SAMEORIGIN", true, nil},
		{"sameorigin does not meet deny", []string{"SAMEORIGIN"}, "DENY", false, nil},
	})
	runSatisfies(t, "Referrer-Policy", []satisfiesCase{
		{"same", []string{"no-referrer"}, "no-referrer", true, nil},
		{"spaces", []string{" no-referrer "}, "no-referrer", true, nil},
		{"case matters to browsers", []string{"No-Referrer"}, "no-referrer", false, nil},
		{"other", []string{"unsafe-url"}, "no-referrer", false, nil},
	})
	runSatisfies(t, "Cross-Origin-Resource-Policy", []satisfiesCase{
		{"same", []string{"same-origin"}, "same-origin", true, nil},
		{"wider", []string{"cross-origin"}, "same-origin", false, nil},
		{"missing", nil, "same-origin", false, []string{"lacks same-origin"}},
	})
}

// TestEquivalent: the same meaning both ways, as BASELINE-DRIFT asks.
func TestEquivalent(t *testing.T) {
	for _, tc := range []struct {
		name, header, a, b string
		same               bool
	}{
		{"reordered Cache-Control", "Cache-Control", "no-cache, no-store, no-transform", "no-store, no-cache, no-transform", true},
		{"directive lost", "Cache-Control", "no-cache, no-store, no-transform", "no-cache, no-store", false},
		{"directive added", "Cache-Control", "no-cache", "no-cache, must-revalidate", false},
		{"charset case", "Content-Type", "text/event-stream; charset=utf-8", "text/event-stream;charset=UTF-8", true},
		{"charset added", "Content-Type", "text/event-stream", "text/event-stream; charset=utf-8", false},
		{"CSP reordered", "Content-Security-Policy", policy.StreamCSP, "frame-ancestors 'none'; default-src 'none'", true},
		{"CSP tightened", "Content-Security-Policy", "default-src 'self'", "default-src 'none'", false},
		{"Vary reordered", "Vary", "Origin, Accept", "accept, origin", true},
		{"other header", "Server", "nginx", "nginx/1.22.1", false},
		{"other header, same", "Server", "nginx", "nginx", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := policy.Equivalent(tc.header, tc.a, tc.b); got != tc.same {
				t.Errorf("Equivalent(%s, %q, %q) = %v, want %v", tc.header, tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func TestParseCacheControl(t *testing.T) {
	got := policy.ParseCacheControl([]string{`No-Cache="Set-Cookie, Authorization", max-age=0`, " ", "private"})
	want := []policy.CacheDirective{
		{Name: "no-cache", Value: "Set-Cookie, Authorization", HasValue: true},
		{Name: "max-age", Value: "0", HasValue: true},
		{Name: "private"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseCacheControl = %+v, want %+v", got, want)
	}
	if d, ok := policy.LookupCacheDirective([]string{"no-store", "max-age=5"}, "max-age"); !ok || d.Value != "5" {
		t.Errorf("LookupCacheDirective max-age = %+v, %v", d, ok)
	}
	if _, ok := policy.LookupCacheDirective([]string{"no-store"}, "no-cache"); ok {
		t.Error("LookupCacheDirective found no-cache in no-store")
	}
	if s := want[0].String(); s != `no-cache="Set-Cookie, Authorization"` {
		t.Errorf("String = %s", s)
	}
}
