package scan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// notEvaluated is the reason given for a rule that had nothing to judge
// and did not say why: the probe it needs never got an answer, say.
const notEvaluated = "not evaluated in this scan"

// observations is what a scan's probes recorded, which the rules judge.
type observations struct {
	cfg   *Config
	https bool

	// responses are the response heads, in the order findings cite them:
	// the main stream, the side probes by name, the reconnect.
	responses []*response
	// via names the intermediaries the responses show they came
	// through (intermediariesOf), whose fixes findings then add.
	via []string

	// headTimeout is set when the main stream's head never came.
	headTimeout bool
	// main is the main stream's head, nil when it never came (and in
	// load mode).
	main *rawhttp.Response
	// window is what watching the main stream recorded; nil when it did
	// not open.
	window *window
	// idle is what watching the idle stream recorded (with --publish);
	// nil when it was not watched.
	idle *idleWindow
	// heads are the stream heads awaited (main and idle), for
	// SSE-HEAD-DELAY.
	heads []head
	// private is what the late probes (a second client, no or other
	// credentials) got when they opened a stream.
	private []privateResult
	// origin is what the origin answered directly (Config.Origin); nil
	// without it.
	origin *originResult
	// resume is the reconnect probe; nil when it was not made.
	resume *resumeResult
	// load is the load run; nil for a scan of one stream.
	load *loadAgg
}

// add records a response head.
func (o *observations) add(r *response) {
	o.responses = append(o.responses, r)
	o.saw(intermediariesOf(r.res)...)
}

// saw records intermediaries seen.
func (o *observations) saw(keys ...string) {
	for _, k := range keys {
		if !slices.Contains(o.via, k) {
			o.via = append(o.via, k)
		}
	}
}

func viaNginx(res *rawhttp.Response) bool {
	srv := res.Values("Server")
	return len(srv) > 0 && strings.Contains(strings.ToLower(strings.Join(srv, " ")), "nginx")
}

// response is one response head, and what the rules judge it as. Every
// response is judged for duplicates and leaks (HDR-DUP, HDR-LEAK).
type response struct {
	probe string
	res   *rawhttp.Response
	body  []byte // the start of a refusal's body, decoded

	// stream: the answer to a stream request, judged as a stream head
	// (the main stream, the reconnect, each stream of a load run).
	stream bool
	// refusal: an error response, judged for its shape.
	refusal bool
	// page: the HTML page that opens the stream.
	page bool
	// cors: the CORS answer is judged; origin is the Origin the request
	// sent ("" for none).
	cors   bool
	origin string
	// accept is the Accept header of a request that the profile refuses,
	// which must get a 406 (SSE-ACCEPT); "" for other requests.
	accept string
	// order: the pinned header order is judged (--expect-order).
	order bool
}

// streamHeaders reports whether r is a stream head whose headers the
// stream rules judge beyond its status and type: a refusal (4xx, 5xx) is
// judged as a refusal instead, but a 200 that is no stream is judged too.
func (r *response) streamHeaders() bool { return r.stream && r.res.StatusCode < 400 }

// pass is one rule's evaluation in one scan, as analysis.Pass is one
// analyzer's run on one package: the rule reads the observations, reports
// findings, and says why when it cannot judge.
type pass struct {
	rule *Rule
	obs  *observations

	ran      bool
	reason   string // why the rule was not evaluated; the first one given
	findings []Finding
	notes    []string
}

// evaluated records that the rule was evaluated, whether or not it finds
// anything.
func (p *pass) evaluated() { p.ran = true }

// skip records why the rule was not evaluated. The first reason stands,
// and evaluating the rule anywhere else overrides it.
func (p *pass) skip(reason string) {
	if p.reason == "" {
		p.reason = reason
	}
}

// report records a finding; the same evidence from several probes is one
// finding naming every probe.
func (p *pass) report(probe, evidence string) {
	p.ran = true
	for i := range p.findings {
		if f := &p.findings[i]; f.Evidence == evidence {
			if !slices.Contains(f.Probes, probe) {
				f.Probes = append(f.Probes, probe)
			}
			return
		}
	}
	r := p.rule
	p.findings = append(p.findings, Finding{
		Rule: r.ID, Severity: r.Severity, Title: r.Title, Evidence: evidence,
		Remediation: r.Remediation, Reference: r.Reference, Probes: []string{probe},
	})
}

// notef adds a note to the report.
func (p *pass) notef(format string, args ...any) {
	p.notes = append(p.notes, fmt.Sprintf(format, args...))
}

// judgeEach runs every rule that judges single responses on r alone: a
// load run's streams, each judged as it opens.
func judgeEach(obs *observations, r *response) []*pass {
	var out []*pass
	for i := range registry {
		if rule := &registry[i]; rule.judge != nil {
			p := &pass{rule: rule, obs: obs}
			rule.judge(p, r)
			out = append(out, p)
		}
	}
	return out
}

// evaluate runs every rule of the registry, in order, on the observations.
func evaluate(obs *observations) []*pass {
	passes := make([]*pass, len(registry))
	for i := range registry {
		rule := &registry[i]
		p := &pass{rule: rule, obs: obs}
		if rule.judge != nil {
			for _, r := range obs.responses {
				rule.judge(p, r)
			}
			if obs.load != nil {
				obs.load.replay(p)
			}
		}
		if rule.check != nil {
			rule.check(p)
		}
		passes[i] = p
	}
	return passes
}

// record writes the passes into the report: the findings, sorted by
// severity and then registry order, which rules were checked, why the
// others were not, and the rules' notes.
func record(passes []*pass, via []string, rep *Report) {
	rep.Findings = []Finding{}
	rep.Checked = nil
	rep.NotApplicable = map[string]string{}
	for _, p := range passes {
		for _, f := range p.findings {
			f.Remediation += fixesFor(p.rule, via)
			rep.Findings = append(rep.Findings, f)
		}
		switch {
		case p.ran:
			rep.Checked = append(rep.Checked, p.rule.ID)
		case p.reason != "":
			rep.NotApplicable[p.rule.ID] = p.reason
		default:
			rep.NotApplicable[p.rule.ID] = notEvaluated
		}
		rep.Notes = append(rep.Notes, p.notes...)
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int { return int(b.Severity - a.Severity) })
}
