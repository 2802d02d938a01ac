// Package nginxtest runs a real nginx for tests: one foreground process,
// one worker, every file it writes (pid, error log, temporary paths) in a
// folder of the test's, and a site configuration the test supplies.
//
// Package nginxtest is for tests only.
package nginxtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Command writes site (the server blocks of an http context, with their
// listen and upstream addresses already set) and a main nginx.conf that
// includes it into dir, and returns the command that runs nginx on them
// in the foreground. workerConnections bounds the connections the one
// worker takes. The error log is dir/error.log.
func Command(bin, dir, site string, workerConnections int) (*exec.Cmd, error) {
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections %[2]d; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir, workerConnections)
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		return nil, err
	}
	return exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")), nil
}
