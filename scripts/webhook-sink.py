#!/usr/bin/env python3
"""A minimal keep-alive HTTP sink for the webhook benchmark: answers every POST with 200
and appends, per request, the receive time and the age of the event (now minus the
payload's "timestamp") in milliseconds to OUT. Usage: webhook-sink.py OUT PORT [PORT ...]"""
import asyncio
import datetime
import sys

OUT = open(sys.argv[1], "a", buffering=1 << 16)
PORTS = [int(p) for p in sys.argv[2:]]
KEY = b'"timestamp":"'


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            now = datetime.datetime.now(datetime.timezone.utc)
            at = body.find(KEY)
            age = -1.0
            if at >= 0:
                end = body.index(b'"', at + len(KEY))
                sent = datetime.datetime.fromisoformat(body[at + len(KEY):end].decode())
                age = (now - sent).total_seconds() * 1000
            OUT.write(f"{now.timestamp():.4f} {age:.1f}\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        OUT.flush()
        writer.close()


async def main():
    servers = [await asyncio.start_server(handle, "127.0.0.1", p) for p in PORTS]
    async def flush():
        while True:
            await asyncio.sleep(0.5)
            OUT.flush()
    await asyncio.gather(flush(), *(s.serve_forever() for s in servers))


asyncio.run(main())
