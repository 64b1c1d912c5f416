#!/usr/bin/env python3
"""Emission benchmark of the fake Zulip server: how many events per second POST /_fake/emit
makes and queues (the issue asks for at least 50,000/s on the 2-core dev machine).

Each run starts a fresh fake-zulip (so that no run pays for the memory of the one before),
registers one queue through the API as a client would, and then:
  - bulk `message`: one POST /_fake/emit of N messages (realm-wide ids, sent through the
    organisation: history, UserMessage rows, the queue's own rendering), content_bytes bytes each;
  - bulk `lively`: one POST /_fake/emit of N events of the busy-organisation mix;
  - steady `lively`: POST /_fake/emit with "rate", then the wall-clock time until the queue
    holds every event (GET /_fake/queues), i.e. the rate the server actually sustained.
It prints the server's own time for the bulk loops (its "seconds"; for the steady run, the
wall time), the client's round trip, events/s and the server's peak RSS, and exits 1 if a rate
is under --target.

Usage: bench/fake_emit_bench.py FAKE_ZULIP [--events 500000] [--content-bytes 300]
       [--rate 100000] [--target 50000]
FAKE_ZULIP is a Release build of the program:
  cmake -S . -B build/fake3-rel -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build/fake3-rel --target fake-zulip
"""
import argparse
import base64
import http.client
import json
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

EMAIL = "bench@example.com"
KEY = "benchbenchbenchbenchbenchbench00"


class FakeZulip:
    def __init__(self, binary, work):
        port_file = Path(work) / "port"
        port_file.unlink(missing_ok=True)  # the previous run's
        self.log = open(Path(work) / "fake-zulip.log", "w")
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--port-file", str(port_file),
             "--user", f"{EMAIL}:{KEY}", "--time-scale", "1"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: fake-zulip did not start; see " + self.log.name)
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def request(self, method, path, body=None, headers=None, timeout=900):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data)

    def control(self, path, payload):
        status, answer = self.request("POST", path, json.dumps(payload),
                                      {"Content-Type": "application/json"})
        if status != 200 or answer.get("result") != "success":
            raise SystemExit(f"bench: {path} failed: {answer}")
        return answer

    def register(self):
        auth = base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()
        form = urllib.parse.urlencode({"event_types": "null", "queue_lifespan_secs": "86400"})
        status, answer = self.request(
            "POST", "/api/v1/register", form,
            {"Authorization": "Basic " + auth,
             "Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise SystemExit(f"bench: register failed: {answer}")
        return answer["queue_id"]

    def pushed(self, queue_id):
        # next_event_id, not "queued": the lively mix's flag events are merged in the queue.
        _, answer = self.request("GET", "/_fake/queues")
        return next(q["next_event_id"] for q in answer["queues"] if q["queue_id"] == queue_id)

    def peak_rss_mb(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0

    def stop(self):
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def bulk(fake, event_type, events, content_bytes):
    queue_id = fake.register()
    start = time.monotonic()
    answer = fake.control("/_fake/emit", {"queue_id": queue_id, "type": event_type,
                                          "count": events, "content_bytes": content_bytes})
    round_trip = time.monotonic() - start
    if answer["events"] != events:
        raise SystemExit(f"bench: asked for {events} events, got {answer}")
    return answer["seconds"], round_trip


def steady(fake, events, rate, content_bytes):
    queue_id = fake.register()
    start = time.monotonic()
    fake.control("/_fake/emit", {"queue_id": queue_id, "type": "lively", "count": events,
                                 "rate": rate, "content_bytes": content_bytes})
    deadline = start + 10 * events / rate + 60
    while fake.pushed(queue_id) < events:
        if time.monotonic() > deadline:
            raise SystemExit("bench: the steady emission did not finish in time")
        time.sleep(0.05)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fake_zulip", help="path of a Release fake-zulip")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--content-bytes", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100_000, help="steady run, events/s")
    parser.add_argument("--target", type=float, default=50_000, help="events/s to reach")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="fake-emit-bench-") as work:
        for name in ("message", "lively", "steady lively"):
            fake = FakeZulip(args.fake_zulip, work)
            try:
                if name == "steady lively":
                    server = wall = steady(fake, args.events, args.rate, args.content_bytes)
                else:
                    server, wall = bulk(fake, name, args.events, args.content_bytes)
                results.append((name, args.events, server, wall, fake.peak_rss_mb()))
            finally:
                fake.stop()

    print(f"fake-zulip emission, {args.events} events per run, content_bytes "
          f"{args.content_bytes}, steady rate asked {args.rate:.0f}/s")
    print(f"{'run':<16}{'events':>10}{'server s':>10}{'wall s':>10}{'events/s':>12}"
          f"{'peak RSS MB':>13}")
    failed = False
    for name, events, server, wall, rss in results:
        rate = events / server if server > 0 else 0
        failed |= rate < args.target
        print(f"{name:<16}{events:>10}{server:>10.2f}{wall:>10.2f}{rate:>12,.0f}{rss:>13,.0f}")
    print(f"target {args.target:,.0f} events/s: {'missed' if failed else 'met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
