"""What the Python benchmarks share: waiting on a condition, the fake Zulip's control calls,
and the bridge's published count from /metrics."""

import http.client
import json
import re
import time


def wait_for(condition, timeout, what, interval=0.05):
    """Polls `condition` until it returns a true value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"bench: timed out waiting for {what}")


def control(port, path, body, timeout=60):
    """POSTs `body` as JSON to the fake Zulip's control `path`; its JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = conn.getresponse().read()
    conn.close()
    return json.loads(answer or b"{}")


def published(metrics_port):
    """zb_events_published_total summed over accounts; 0 while /metrics does not answer."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except OSError:
        return 0
    return sum(int(m) for m in re.findall(r"^zb_events_published_total\{[^}]*\} (\d+)$", text, re.M))
