-- wrk script for durable publishes (bench/cluster.sh, docs/benchmarks.md):
-- POSTs a small event to /api/publish with the bearer token in TOKEN.
-- TOPIC (default bench) names the topic; wrk counts answers other than
-- 2xx as "Non-2xx or 3xx responses".
--
--   TOKEN=... wrk -t2 -c64 -d5s -s bench/publish.lua http://127.0.0.1:8080/api/publish
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
wrk.body = '{"topic":"' .. (os.getenv("TOPIC") or "bench") .. '","data":"hello world 0123456789"}'
