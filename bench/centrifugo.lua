-- wrk script for Centrifugo's server API (bench/cluster.sh): POSTs the
-- same small event as bench/publish.lua to /api/publish, with the API key
-- in APIKEY, on channel CHANNEL (default bench).
--
--   APIKEY=... wrk -t2 -c64 -d5s -s bench/centrifugo.lua http://127.0.0.1:8000/api/publish
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "apikey " .. (os.getenv("APIKEY") or "")
wrk.body = '{"channel":"' .. (os.getenv("CHANNEL") or "bench") .. '","data":"hello world 0123456789"}'
