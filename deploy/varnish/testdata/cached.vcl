# Misconfigured on purpose: every request is looked up in the cache,
# Authorization ignored, and streams are stored with a forced TTL. The
# first user's stream is served to everyone, with or without a token.
# expect: SSE-AUTH-LEAK SSE-CACHE
vcl 4.1;

backend hub {
    .host = "127.0.0.1";
    .port = "8080";
}

sub vcl_recv {
    return (hash);
}

sub vcl_hash {
    # Probes that ask differently get objects of their own.
    hash_data(req.http.Accept);
    hash_data(req.http.Origin);
}

sub vcl_backend_response {
    set beresp.ttl = 30s;
    set beresp.do_stream = true;
    return (deliver);
}
