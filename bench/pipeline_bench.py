#!/usr/bin/env python3
"""End-to-end benchmark of the pipeline: events per second from the fake Zulip server through
the bridge into the real Kafka broker, the bridge's CPU seconds per 100,000 events and its
peak RSS (getrusage of the bridge process, via wait4).

What it measures: the drain of a backlog, the hardest case for the bridge (the first poll after
an outage returns everything at once). Events are loaded into each account's queue while the
bridge is stopped; then the bridge starts, and the clock runs until Kafka has acknowledged
every event (the bridge's zb_events_published_total) and the bridge has stopped cleanly.

Usage: bench/pipeline_bench.py BUILD_DIR [--accounts 1,10] [--events 100000]
Needs: a Release build (./dev build release), kcat, Java and the Kafka jars (./dev deps).
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import control, published, wait_for

ROOT = Path(__file__).resolve().parent.parent
EVENT = {"type": "message", "message": {
    "id": 0, "sender_id": 10, "content": "<p>benchmark message with a realistic body: " + "x" * 300 + "</p>",
    "recipient_id": 23, "timestamp": 1594825416, "client": "bench", "subject": "bench",
    "topic_links": [], "is_me_message": False, "reactions": [], "submessages": [],
    "sender_full_name": "Bench Bot", "sender_email": "bench@example.com",
    "sender_realm_str": "zulip", "display_recipient": "bench", "type": "stream",
    "stream_id": 1, "avatar_url": None, "content_type": "text/html"}, "flags": []}





def run(build, accounts, events, brokers, work, properties):
    fake_log = open(work / f"fake-{accounts}.log", "w")
    port_file = work / f"fake-{accounts}.port"
    keys = {f"bench{i}": f"{i:04d}benchKey0123456789abcdefghijklm"[:32] for i in range(accounts)}
    users = [arg for name, key in keys.items() for arg in ("--user", f"{name}@example.com:{key}")]
    fake = subprocess.Popen([str(build / "tests/fake_zulip/fake-zulip"), "--listen", "127.0.0.1:0",
                             "--port-file", str(port_file), "--rate-limit", "60:100000", *users],
                            stdout=fake_log, stderr=subprocess.STDOUT)
    port = int(wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20, "fake-zulip"))
    state = work / f"state-{accounts}"
    topic_prefix = f"bench{accounts}x{int(time.time())}"
    lines = ["kafka:", f"  brokers: [{brokers}]", f"  topic_template: \"{topic_prefix}.{{type}}\"",
             *(["  properties:"] if properties else []),
             *[f"    {p.split('=', 1)[0]}: \"{p.split('=', 1)[1]}\"" for p in properties],
             f"state_dir: {state}", "http:", "  listen: 127.0.0.1:0", "log:", "  level: info",
             "accounts:"]
    for name, key in keys.items():
        (work / f"{name}.key").write_text(key + "\n")
        os.chmod(work / f"{name}.key", 0o600)
        lines += [f"  - name: {name}", f"    site: http://127.0.0.1:{port}",
                  f"    email: {name}@example.com", f"    api_key_file: {work / (name + '.key')}"]
    config = work / f"bridge-{accounts}.yaml"
    config.write_text("\n".join(lines) + "\n")

    # 1. Register the queues (a first run), then stop the bridge: its queues stay on the server.
    setup_log = open(work / f"bridge-{accounts}-setup.log", "w")
    bridge = subprocess.Popen([str(build / "zulip-bridge"), "--config", str(config)],
                              stdout=setup_log, stderr=subprocess.STDOUT)
    def queues():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/_fake/queues")
        return json.loads(conn.getresponse().read())["queues"]
    wait_for(lambda: len(queues()) == accounts, 60, "registrations")
    bridge.send_signal(signal.SIGTERM)
    if bridge.wait(60) != 0:
        raise SystemExit("bench: the bridge did not stop cleanly; see " + str(work))

    # 2. The backlog: `events` in all, spread over the accounts, one bulk /_fake/emit request
    #    per queue (fresh realm-wide message ids, ~300-byte bodies).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    queue_ids = [q["queue_id"] for q in queues()]
    for i, queue_id in enumerate(queue_ids):
        count = events // accounts + (1 if i < events % accounts else 0)
        body = json.dumps({"queue_id": queue_id, "type": "message", "count": count,
                           "content_bytes": 300})
        conn.request("POST", "/_fake/emit", body, {"Content-Type": "application/json"})
        answer = conn.getresponse().read()
        if json.loads(answer).get("result") != "success":
            raise SystemExit("bench: /_fake/emit failed: " + answer.decode())
    conn.close()

    # 3. The measured run: start, drain, stop. (Its own log, so the listener port read from it
    #    is this run's.)
    bridge_log = open(work / f"bridge-{accounts}.log", "w")
    start = time.monotonic()
    bridge = subprocess.Popen([str(build / "zulip-bridge"), "--config", str(config)],
                              stdout=bridge_log, stderr=subprocess.STDOUT)
    metrics_port = int(wait_for(lambda: next(iter(re.findall(
        r'msg="HTTP listener up".* port=(\d+)', (work / f"bridge-{accounts}.log").read_text())[-1:]), None),
        30, "the bridge's HTTP listener"))
    wait_for(lambda: published(metrics_port) >= events, 600, "Kafka acknowledgements")
    drained = time.monotonic() - start
    bridge.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(bridge.pid, 0)
    fake.send_signal(signal.SIGTERM)
    fake.wait(30)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("bench: the bridge did not exit 0; see " + str(work))
    cpu = usage.ru_utime + usage.ru_stime
    return {"accounts": accounts, "events": events, "seconds": round(drained, 2),
            "events_per_second": round(events / drained),
            "cpu_seconds_per_100k_events": round(cpu / events * 100000, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--accounts", default="1,10")
    parser.add_argument("--events", type=int, default=100000)
    parser.add_argument("--property", action="append", default=[],
                        help="a librdkafka property NAME=VALUE for the bridge (repeatable)")
    args = parser.parse_args()
    build = Path(args.build).resolve()
    work = Path(tempfile.mkdtemp(prefix="zb-bench."))
    broker = ROOT / "tests/kafka/broker"
    brokers = subprocess.check_output([str(broker), "start", str(work / "kafka")], text=True).strip()
    try:
        for n in [int(a) for a in args.accounts.split(",")]:
            print(json.dumps(run(build, n, args.events, brokers, work, args.property)), flush=True)
    finally:
        subprocess.run([str(broker), "stop", str(work / "kafka")], check=False)
    print(f"bench: logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
