"""Zulip's own Python client against the fake Zulip server (run by run_python_client_test.sh).

If the fake differed from Zulip in what this client relies on (server_settings at
construction, register, get_events, call_on_each_event's re-register on BAD_EVENT_QUEUE_ID,
heartbeats skipped), these tests would fail.
"""

import json
import os
import threading
import time
import unittest
import urllib.request

import zulip

URL = os.environ["FAKE_ZULIP_URL"]
EMAIL = "bot@example.com"
KEY = "abcdefghijklmnopqrstuvwxyz012345"
DEADLINE_SECS = 30


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def push(event, **target):
    target = target or {"email": EMAIL}
    return control("POST", "/_fake/events", dict(target, event=event))


def wait_for(condition, what):
    deadline = time.monotonic() + DEADLINE_SECS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def new_client():
    return zulip.Client(email=EMAIL, api_key=KEY, site=URL)


class PythonClientTest(unittest.TestCase):
    def test_construction_reads_server_settings(self):
        client = new_client()
        self.assertTrue(client.has_connected)
        self.assertEqual(client.zulip_version, "10.2")
        self.assertEqual(client.feature_level, 372)

    def test_bad_key_is_an_error_result(self):
        client = zulip.Client(email=EMAIL, api_key="x" * 32, site=URL)
        result = client.register(event_types=["message"])
        self.assertEqual(result["result"], "error")
        self.assertEqual(result["code"], "UNAUTHORIZED")
        self.assertEqual(result["msg"], "Invalid API key")

    def test_register_then_get_events(self):
        client = new_client()
        registered = client.register(
            event_types=["typing"], fetch_event_types=["realm"], queue_lifespan_secs=86400
        )
        self.assertEqual(registered["result"], "success", registered)
        self.assertEqual(registered["last_event_id"], -1)
        self.assertEqual(registered["event_queue_longpoll_timeout_seconds"], 90)
        self.assertNotIn("ignored_parameters_unsupported", registered)
        queue_id = registered["queue_id"]
        pushed = push({"type": "typing", "op": "start"}, queue_id=queue_id)
        self.assertEqual(pushed["queues"][0]["id"], 0)
        result = client.get_events(queue_id=queue_id, last_event_id=-1)
        self.assertEqual(result["result"], "success", result)
        self.assertEqual([e["id"] for e in result["events"]], [0])
        # Acknowledge it; a dont_block poll then comes back empty.
        result = client.get_events(queue_id=queue_id, last_event_id=0, dont_block=True)
        self.assertEqual(result["events"], [])
        self.assertEqual(client.deregister(queue_id)["result"], "success")
        gone = client.get_events(queue_id=queue_id, last_event_id=0, dont_block=True)
        self.assertEqual(gone["code"], "BAD_EVENT_QUEUE_ID")

    def test_call_on_each_event_delivers_skips_heartbeats_and_reregisters(self):
        received = []
        lock = threading.Lock()

        def on_event(event):
            with lock:
                received.append(event)

        def my_queues():
            queues = control("GET", "/_fake/queues")["queues"]
            return [q for q in queues if q["email"] == EMAIL and q["event_types"] == ["presence"]]

        client = new_client()
        thread = threading.Thread(
            target=client.call_on_each_event,
            args=(on_event,),
            kwargs={"event_types": ["presence"]},
            daemon=True,
        )
        thread.start()
        first = wait_for(lambda: [q for q in my_queues() if q["polling"]], "the first poll")
        first_id = first[0]["queue_id"]

        push({"type": "presence", "n": 1})
        wait_for(lambda: len(received) == 1, "the first event")

        # A heartbeat (56 fake seconds into a parked poll) is acknowledged, never passed on.
        wait_for(lambda: [q for q in my_queues() if q["polling"]], "the next poll")
        control("POST", "/_fake/time/advance", {"seconds": 56})
        wait_for(
            lambda: [q for q in my_queues() if q["polling"] and q["newest_pruned_id"] >= 1],
            "the heartbeat to be acknowledged",
        )
        push({"type": "presence", "n": 2})
        wait_for(lambda: len(received) == 2, "the second event")

        # Lose the queue: the client gets BAD_EVENT_QUEUE_ID and registers a new one.
        control("POST", "/_fake/queues/drop", {"queue_id": first_id})
        second = wait_for(
            lambda: [q for q in my_queues() if q["polling"] and q["queue_id"] != first_id],
            "a new queue",
        )
        self.assertNotEqual(second[0]["queue_id"], first_id)
        push({"type": "presence", "n": 3})
        wait_for(lambda: len(received) == 3, "the event on the new queue")
        with lock:
            self.assertEqual([e["n"] for e in received], [1, 2, 3])
            self.assertNotIn("heartbeat", [e["type"] for e in received])
            self.assertEqual(received[2]["id"], 0)  # ids restart on the new queue


if __name__ == "__main__":
    unittest.main()
