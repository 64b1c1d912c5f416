#!/usr/bin/env python3
"""Peak memory of the bridge through a Kafka outage with a backlog: the broker is stopped for
--outage-secs while the fake Zulip holds --events events for the bridge's queue; then the broker
comes back and the clock runs until Kafka has acknowledged every event.

What it shows: whether the bridge's peak RSS is set by configuration (queue.buffering.max.*)
whatever the outage's length and the backlog (issue #15). Two runs, on the same broker and
backlog:
  floor     message.timeout.ms longer than the outage: no record times out, so the bridge holds
            exactly librdkafka's queue limit of records all through the outage. This is the
            baseline: the same bridge holding the limit (not librdkafka alone).
  outage    message.timeout.ms = --message-timeout-ms (short, so that records time out many
            times during the outage, as they would over a long one with the default 300 s).
Peak RSS is VmHWM of the measured bridge (started during the outage, with the backlog waiting
for it) at the end of the outage and getrusage's ru_maxrss at exit
(wait4), which also covers the drain.

Usage: bench/outage_bench.py BUILD_DIR [--outage-secs 600] [--events 1000000]
           [--message-timeout-ms 10000] [--bridge PATH] [--property NAME=VALUE ...]
Needs: a build with zulip-bridge and tests/fake_zulip/fake-zulip, Java and the Kafka jars.
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
WARMUP_EVENTS = 100




def proc_status_kib(pid, field):
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def emit(port, queue_id, count):
    answer = control(port, "/_fake/emit", {"queue_id": queue_id, "type": "message",
                                           "count": count, "content_bytes": 300}, timeout=600)
    if answer.get("result") != "success":
        raise SystemExit("bench: /_fake/emit failed: " + json.dumps(answer))


def run(label, args, bridge_bin, fake_bin, broker, kafka_dir, brokers, work, timeout_ms):
    children = []
    try:
        return measure(label, args, bridge_bin, fake_bin, broker, kafka_dir, brokers, work,
                       timeout_ms, children)
    finally:
        # Whatever happened, leave no process of ours behind, and the broker up for the next run.
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        subprocess.run([str(broker), "start", str(kafka_dir)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(label, args, bridge_bin, fake_bin, broker, kafka_dir, brokers, work, timeout_ms,
            children):
    port_file = work / f"fake-{label}.port"
    key = "0000benchKey0123456789abcdefghijklm"[:32]
    fake = subprocess.Popen([str(fake_bin), "--listen", "127.0.0.1:0", "--port-file",
                             str(port_file), "--rate-limit", "60:100000", "--user",
                             f"bench@example.com:{key}"],
                            stdout=open(work / f"fake-{label}.log", "w"), stderr=subprocess.STDOUT)
    children.append(fake)
    port = int(wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 20,
                        "fake-zulip"))
    (work / "bench.key").write_text(key + "\n")
    os.chmod(work / "bench.key", 0o600)
    properties = [f"message.timeout.ms={timeout_ms}", *args.property]
    lines = ["kafka:", f"  brokers: [{brokers}]",
             f"  topic_template: \"outage{label}x{int(time.time())}.{{type}}\"", "  properties:",
             *[f"    {p.split('=', 1)[0]}: \"{p.split('=', 1)[1]}\"" for p in properties],
             f"state_dir: {work / ('state-' + label)}", "http:", "  listen: 127.0.0.1:0", "log:",
             "  level: info", "accounts:", "  - name: bench", f"    site: http://127.0.0.1:{port}",
             "    email: bench@example.com", f"    api_key_file: {work / 'bench.key'}"]
    config = work / f"bridge-{label}.yaml"
    config.write_text("\n".join(lines) + "\n")

    def start_bridge(log_path):
        bridge = subprocess.Popen([str(bridge_bin), "--config", str(config)],
                                  stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        children.append(bridge)
        metrics_port = int(wait_for(lambda: next(iter(re.findall(
            r'msg="HTTP listener up".* port=(\d+)', log_path.read_text())[-1:]), None), 30,
            "the bridge's HTTP listener"))
        return bridge, metrics_port

    def queues():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/_fake/queues")
        return json.loads(conn.getresponse().read())["queues"]

    # 1. A first run registers the queue and publishes a few events, so that the topic exists;
    #    then it stops, keeping its queue.
    bridge, metrics_port = start_bridge(work / f"bridge-{label}-setup.log")
    queue_id = wait_for(lambda: next((q["queue_id"] for q in queues()), None), 60, "registration")
    emit(port, queue_id, WARMUP_EVENTS)
    wait_for(lambda: published(metrics_port) >= WARMUP_EVENTS, 120, "the warm-up")
    bridge.send_signal(signal.SIGTERM)
    if bridge.wait(120) != 0:
        raise SystemExit("bench: the setup bridge did not stop cleanly; see " + str(work))

    # 2. The outage: the broker stops, the backlog waits in the queue, and the measured bridge
    #    starts; its first poll returns the whole backlog (Zulip has no batch limit).
    subprocess.run([str(broker), "stop", str(kafka_dir)], check=True)
    emit(port, queue_id, args.events)
    log_path = work / f"bridge-{label}.log"
    outage_start = time.monotonic()
    bridge, metrics_port = start_bridge(log_path)
    rss_before = proc_status_kib(bridge.pid, "VmRSS")
    trace = []
    while time.monotonic() - outage_start < args.outage_secs:
        time.sleep(min(10, max(0.1, args.outage_secs - (time.monotonic() - outage_start))))
        trace.append((round(time.monotonic() - outage_start),
                      round(proc_status_kib(bridge.pid, "VmRSS") / 1024)))
    outage_peak = proc_status_kib(bridge.pid, "VmHWM")
    subprocess.run([str(broker), "start", str(kafka_dir)], check=True, stdout=subprocess.DEVNULL)
    back = time.monotonic()
    wait_for(lambda: published(metrics_port) >= args.events, 3600,
             "Kafka acknowledgements after the outage")
    drained = time.monotonic() - back
    bridge.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(bridge.pid, 0)
    bridge.returncode = os.waitstatus_to_exitcode(status)
    fake.send_signal(signal.SIGTERM)
    fake.wait(60)
    if bridge.returncode != 0:
        raise SystemExit(f"bench: the bridge did not exit 0; see {log_path}")
    return {"run": label, "message_timeout_ms": timeout_ms, "outage_secs": args.outage_secs,
            "events": args.events, "rss_at_start_mib": round(rss_before / 1024, 1),
            "peak_rss_outage_mib": round(outage_peak / 1024, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "drain_after_outage_secs": round(drained, 1),
            "rss_trace_mib": trace}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("--outage-secs", type=float, default=600)
    parser.add_argument("--events", type=int, default=1000000)
    parser.add_argument("--message-timeout-ms", type=int, default=10000)
    parser.add_argument("--bridge", help="the zulip-bridge to measure (default BUILD/zulip-bridge)")
    parser.add_argument("--runs", default="floor,outage", help="which runs, comma-separated")
    parser.add_argument("--property", action="append", default=[],
                        help="a librdkafka property NAME=VALUE for the bridge (repeatable)")
    args = parser.parse_args()
    build = Path(args.build).resolve()
    bridge_bin = Path(args.bridge).resolve() if args.bridge else build / "zulip-bridge"
    fake_bin = build / "tests/fake_zulip/fake-zulip"
    work = Path(tempfile.mkdtemp(prefix="zb-outage."))
    broker = ROOT / "tests/kafka/broker"
    kafka_dir = work / "kafka"
    brokers = subprocess.check_output([str(broker), "start", str(kafka_dir)], text=True).strip()
    # Longer than the outage and the drain: nothing times out in the floor run.
    floor_timeout_ms = int(args.outage_secs * 1000) + 600000
    try:
        for label in args.runs.split(","):
            timeout_ms = floor_timeout_ms if label == "floor" else args.message_timeout_ms
            print(json.dumps(run(label, args, bridge_bin, fake_bin, broker, kafka_dir, brokers,
                                 work, timeout_ms)), flush=True)
    finally:
        subprocess.run([str(broker), "stop", str(kafka_dir)], check=False)
    print(f"bench: logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
