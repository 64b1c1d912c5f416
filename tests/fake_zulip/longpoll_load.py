#!/usr/bin/env python3
"""Holds N concurrent long-polls on a running fake-zulip and reports what it cost.

Usage: longpoll_load.py URL N   (fake-zulip started with --user bot@example.com:KEY below)
Registers N queues, parks one GET on each, waits until the server reports N parked polls,
pushes one event that every queue takes, and times until every poll has answered. Not a test
(no assertion on speed): a measurement for the 10,000 long-poll target of issue 4.
"""

import asyncio
import base64
import json
import resource
import sys
import time
import urllib.request

EMAIL = "bot@example.com"
KEY = "abcdefghijklmnopqrstuvwxyz012345"
AUTH = "Basic " + base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()


def control(url, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url + path, data=data, method=method)) as r:
        return json.loads(r.read())


async def request(host, port, raw):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(raw)
    await writer.drain()
    return reader, writer


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


async def main(url, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = url.split("//")[1].split(":")
    port = int(port)
    control(url, "POST", "/_fake/rate_limit", {"rules": "60:100000000"})

    started = time.monotonic()
    queue_ids = []
    reader, writer = await asyncio.open_connection(host, port)  # one keep-alive connection
    body = b"fetch_event_types=%5B%5D&event_types=%5B%22x%22%5D"
    for _ in range(n):
        writer.write(
            b"POST /api/v1/register HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode() +
            b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        _, payload = await read_response(reader)
        queue_ids.append(json.loads(payload)["queue_id"])
    writer.close()
    print(f"registered {n} queues in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    polls = []
    for queue_id in queue_ids:
        raw = (f"GET /api/v1/events?queue_id={queue_id}&last_event_id=-1 HTTP/1.1\r\n"
               f"Host: x\r\nAuthorization: {AUTH}\r\n\r\n").encode()
        polls.append(await request(host, port, raw))
    while control(url, "GET", "/_fake/stats")["parked_polls"] < n:
        await asyncio.sleep(0.1)
    print(f"{n} long-polls parked in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    pushed = control(url, "POST", "/_fake/events", {"email": EMAIL, "event": {"type": "x"}})
    answers = await asyncio.gather(*(read_response(r) for r, _ in polls))
    ok = sum(1 for head, _ in answers if head.startswith(b"HTTP/1.1 200"))
    print(f"one event to {len(pushed['queues'])} queues: {ok} answers in "
          f"{time.monotonic() - started:.2f} s")
    for _, w in polls:
        w.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
