// Package telemetry is what sseguard tells its operators: Prometheus
// metrics, the refusal-spike detector, and the per-second stats that feed
// the live dashboard.
//
// The metrics have bounded label sets: transports, reasons, statuses and
// error codes come from fixed lists, and topics, tokens and addresses are
// never labels. The spike detector keeps a slowly moving baseline of the
// refusal rate (401, 403, 406, 429) and raises an alarm, with hysteresis,
// when the last minute's rate exceeds both a multiple of the baseline and an
// absolute floor. Its clock is injected, so it is tested without sleeping.
//
// Package telemetry does not serve HTTP (package server mounts /metrics and
// the dashboard stream) and does not decide anything about requests.
package telemetry
