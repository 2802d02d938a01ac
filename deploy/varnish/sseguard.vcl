# Varnish in front of the sseguard hub. Streams are piped: never cached,
# never compressed, never buffered.
vcl 4.1;

backend hub {
    .host = "127.0.0.1";
    .port = "8080";
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 3600s;
}

sub vcl_recv {
    # The stream path, and anything that asks for a stream: pipe it.
    # (pipe_timeout must exceed the heartbeat interval; its default of
    # 60 s does.)
    if (req.url ~ "^/events" || req.http.Accept ~ "text/event-stream") {
        return (pipe);
    }
}

sub vcl_pipe {
    # One request per piped connection.
    set bereq.http.Connection = "close";
}

sub vcl_deliver {
    # No version in Via (HDR-LEAK).
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}
