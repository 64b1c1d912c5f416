#!/usr/bin/env python3
"""Keeps a fake Zulip organisation busy for ./dev demo: picks events from Zulip's own
examples (tests/testdata/zulip/event-examples.jsonl), weighted towards what a real
organisation sends most (messages, reactions, typing, presence, flags), and pushes them to
every demo user's queues through the fake server's control interface, at a steady rate.

Usage: demo_traffic.py FAKE_ZULIP_URL RATE_PER_SECOND EMAIL [EMAIL...]
"""
import json
import random
import sys
import time
import urllib.request
from pathlib import Path

WEIGHTS = {"message": 30, "reaction": 10, "typing": 15, "presence": 10,
           "update_message_flags": 10, "update_message": 4, "delete_message": 2,
           "subscription": 2, "user_status": 2}


def main() -> int:
    url, rate, emails = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    examples = [json.loads(line) for line in
                (Path(__file__).resolve().parent.parent / "tests/testdata/zulip/event-examples.jsonl")
                .read_text().splitlines() if line.strip()]
    examples = [e for e in examples if e["type"] != "heartbeat"]
    weights = [WEIGHTS.get(e["type"], 0.3) for e in examples]
    rng = random.Random(7)
    next_message_id = 1000
    interval = 1.0 / rate
    deadline = time.monotonic()
    while True:
        event = dict(rng.choices(examples, weights)[0])
        if event["type"] == "message":
            event["message"] = dict(event["message"], id=next_message_id,
                                    content=f"demo message {next_message_id} ✓")
            next_message_id += 1
        body = json.dumps({"email": rng.choice(emails), "event": event}).encode()
        request = urllib.request.Request(url + "/_fake/events", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).read()
        except OSError:
            time.sleep(1)  # the server is restarting or gone; the demo's Ctrl-C ends us
        deadline += interval
        time.sleep(max(0.0, deadline - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main())
