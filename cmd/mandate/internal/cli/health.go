package cli

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// health probes a running gateway (for container HEALTHCHECKs, where the
// image has no shell or curl): exit 0 when the URL answers 200.
func health(args []string, stdout io.Writer) error {
	fs := newFlags("health", stdout)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL to probe")
	timeout := fs.Duration("timeout", 3*time.Second, "probe timeout")
	if err := parse(fs, args); err != nil {
		return err
	}
	c := &http.Client{Timeout: *timeout}
	resp, err := c.Get(*url)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d", *url, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
