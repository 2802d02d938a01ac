package server

import (
	"io/fs"
	"net/http"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/telemetry"
	"github.com/sseguard/sseguard/web"
)

// DashboardTopic is the reserved topic a token must be allowed to
// subscribe to for the dashboard: `sseguard token --subscribe sseguard:dashboard`.
const DashboardTopic = "sseguard:dashboard"

// DashboardCookie is the cookie the dashboard login sets. It is the
// dashboard's alone: its Path is /dashboard, and neither the event stream
// nor publishing read it, so a dashboard login grants nothing else.
const DashboardCookie = "sseguard_dashboard"

// dashboardPath is the cookie's Path: /dashboard and everything under it.
const dashboardPath = "/dashboard"

// routeDashboard mounts the live dashboard: the page, its login and logout,
// and the stream of stats it draws.
func (s *Server) routeDashboard(mux *http.ServeMux, harden, stream func(http.Handler) http.Handler) {
	mux.Handle("GET /dashboard", harden(http.HandlerFunc(s.handleDashboardPage)))
	mux.Handle("GET /dashboard/login", harden(http.HandlerFunc(s.handleLoginPage)))
	mux.Handle("POST /dashboard/login", harden(http.HandlerFunc(s.handleLogin)))
	mux.Handle("POST /dashboard/logout", harden(http.HandlerFunc(s.handleLogout)))
	mux.Handle("GET /dashboard/stream", stream(http.HandlerFunc(s.handleDashboardStream)))
}

// dashboardPrincipal returns the caller if it may see the dashboard. Only
// the dashboard's own cookie counts: not the API's token cookie, header or
// query parameter.
func (s *Server) dashboardPrincipal(r *http.Request) (*auth.Principal, *policy.Problem) {
	c, err := r.Cookie(DashboardCookie)
	if err != nil || c.Value == "" {
		return nil, tokenMissing("the dashboard needs a login with a token that may subscribe to " + DashboardTopic)
	}
	p, prob := s.auth.Verify(c.Value)
	if prob != nil {
		return nil, prob
	}
	if !p.CanSubscribe(DashboardTopic) {
		return nil, policy.Errorf(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not subscribe to %s", DashboardTopic)
	}
	return p, nil
}

func servePage(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(web.Static, name)
	if err != nil {
		panic("server: embedded page missing: " + name) // a build bug, caught by tests
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

// seeOther redirects a person's browser to url. A redirect is a
// navigation: it carries the page's headers (CSP, X-Frame-Options, ...),
// with no-store, as it depends on the cookie, and no body, so no
// Content-Type.
func (s *Server) seeOther(w http.ResponseWriter, r *http.Request, url string) {
	s.profile.ApplyTo(w, r, policy.KindPage)
	h := w.Header()
	h.Del("Content-Type")
	h.Set("Cache-Control", "no-store")
	h.Set("Location", url)
	w.WriteHeader(http.StatusSeeOther)
}

func (s *Server) handleDashboardPage(w http.ResponseWriter, r *http.Request) {
	if _, prob := s.dashboardPrincipal(r); prob != nil {
		s.seeOther(w, r, "/dashboard/login")
		return
	}
	servePage(w, "dashboard.html")
}

func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	servePage(w, "login.html")
}

// dashboardCookie returns the dashboard's cookie with value: HttpOnly
// (scripts cannot read it), SameSite=Strict, Path=/dashboard, and Secure
// unless dashboard.insecure_cookie is set. Browsers keep a Secure cookie
// set over plain HTTP from localhost and 127.0.0.1 (they are secure
// contexts), so the quick start works without TLS.
func (s *Server) dashboardCookie(value string) *http.Cookie {
	return &http.Cookie{
		Name:     DashboardCookie,
		Value:    value,
		Path:     dashboardPath,
		HttpOnly: true,
		Secure:   !s.cfg.Dashboard.InsecureCookie,
		SameSite: http.SameSiteStrictMode,
	}
}

// handleLogin takes a token from the login form and sets it as the
// dashboard's cookie (see dashboardCookie), expiring with the token.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOriginPost(r) {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusForbidden, policy.CodeOriginForbidden, "log in from the dashboard's own page"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		policy.WriteProblem(w, r, bodyProblem(err, "the login form cannot be parsed"))
		return
	}
	tok := r.PostForm.Get("token")
	p, prob := s.auth.Verify(tok)
	if prob != nil || !p.CanSubscribe(DashboardTopic) {
		// A person at a form: back to it, where #refused shows why.
		s.seeOther(w, r, "/dashboard/login#refused")
		return
	}
	cookie := s.dashboardCookie(tok)
	if !p.Expires.IsZero() {
		cookie.Expires = p.Expires
	}
	http.SetCookie(w, cookie)
	s.seeOther(w, r, "/dashboard")
}

// handleLogout clears the dashboard's cookie and goes back to the login
// form. The token itself stays valid until it expires.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !sameOriginPost(r) {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusForbidden, policy.CodeOriginForbidden, "log out from the dashboard's own page"))
		return
	}
	cookie := s.dashboardCookie("")
	cookie.MaxAge = -1
	http.SetCookie(w, cookie)
	s.seeOther(w, r, "/dashboard/login")
}

// handleDashboardStream sends the stats once a second as "stats" events.
func (s *Server) handleDashboardStream(w http.ResponseWriter, r *http.Request) {
	if prob := bodyOnStream(r); prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	p, prob := s.dashboardPrincipal(r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	release := s.holdConn(w, r, p)
	if release == nil {
		return
	}
	defer release()
	st, err := sse.NewStream(w, r, &sse.StreamOptions{
		Profile:   s.profile,
		Heartbeat: s.cfg.Stream.Heartbeat.D(),
		Shutdown:  s.hub.Closing(),
		Expires:   p.Expires,
	})
	if err != nil {
		return
	}
	_ = st.Serve(r.Context(), newStatsFeed(s.metrics))
}

// statsFeed is the dashboard stream's sse.Feed: the latest stats as one
// "stats" event, at once and then whenever newer ones are ready; before
// the first and whenever a minute has closed, the "history" event
// (telemetry.History), so that a dashboard opens on the last hour, not on
// empty charts.
type statsFeed struct {
	m     *telemetry.Metrics
	next  <-chan struct{} // closed when newer stats are ready
	sent  time.Time       // the history minute last sent
	event []byte
}

func newStatsFeed(m *telemetry.Metrics) *statsFeed {
	now := make(chan struct{})
	close(now) // the current stats go out at once
	return &statsFeed{m: m, next: now}
}

// Ready fires when newer stats are ready.
func (f *statsFeed) Ready() <-chan struct{} { return f.next }

// Pull appends the latest stats, if there are any yet, as one event.
func (f *statsFeed) Pull(dst [][]byte) ([][]byte, bool) {
	stats, next := f.m.Latest()
	f.next = next
	if stats == nil {
		return dst, false
	}
	if minute := f.m.HistoryMinute(); !minute.Equal(f.sent) {
		f.sent = minute
		if h, err := (sse.Event{Type: "history", Data: string(f.m.History())}).AppendTo(nil); err == nil {
			dst = append(dst, h)
		}
	}
	b, err := sse.Event{Type: "stats", Data: string(stats)}.AppendTo(f.event[:0])
	if err != nil { // not for a fixed type and any data
		return dst, false
	}
	f.event = b
	return append(dst, b), false
}

// sameOriginPost reports whether a form POST comes from this origin. With
// the strict Referrer-Policy (no-referrer) browsers send "Origin: null" on
// form posts, so the Fetch metadata header decides when it is present;
// otherwise the Origin must be absent or this origin.
func sameOriginPost(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	o := r.Header.Get("Origin")
	return o == "" || policy.IsSameOrigin(r, o)
}
