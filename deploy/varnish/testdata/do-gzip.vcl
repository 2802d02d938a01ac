# Misconfigured on purpose: the stream passes the cache but Varnish
# compresses it (do_gzip): the compressor holds the events, which never
# arrive.
# expect: SSE-NO-COMPRESS SSE-FLUSH
vcl 4.1;

backend hub {
    .host = "127.0.0.1";
    .port = "8080";
}

sub vcl_recv {
    if (req.url ~ "^/events") {
        return (pass);
    }
}

sub vcl_backend_response {
    if (beresp.http.Content-Type ~ "text/event-stream") {
        set beresp.do_gzip = true;
        set beresp.do_stream = true;
    }
}

sub vcl_deliver {
    unset resp.http.Via;
}
