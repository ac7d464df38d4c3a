"""A minimal SMTP server that accepts and discards every message, for load benchmarks
(aiosmtpd, which the tests use, parses and stores each message and tops out far below
what Rapport sends). Prints the count of accepted messages to the file given as the
second argument on every 1000th message and on exit.

Usage: python3 scripts/smtp-sink.py PORT COUNT_FILE
"""
import asyncio
import signal
import sys

PORT = int(sys.argv[1])
COUNT_FILE = sys.argv[2]
count = 0


def save():
    with open(COUNT_FILE, "w") as f:
        f.write(str(count))


async def session(reader, writer):
    global count
    writer.write(b"220 sink ESMTP\r\n")
    await writer.drain()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n.\r\n")
                count += 1
                if count % 1000 == 0:
                    save()
                writer.write(b"250 accepted\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(session, "127.0.0.1", PORT, limit=1 << 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    save()


asyncio.run(main())
