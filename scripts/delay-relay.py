#!/usr/bin/env python3
"""A user-space TCP relay that holds every chunk for a fixed time (the link lab's delay).

Usage: delay-relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS [CUT_AFTER]

With CUT_AFTER, the first connection is cut (both sides closed) once it has
forwarded CUT_AFTER bytes from the client: a link lost in mid-upload. With
CUT_AFTER written down:N, it is cut once it has forwarded N bytes from the
server: a link lost in mid-download.

The kernel here has no netem, so the lab adds latency in user space
(PLATFORM.md "Networks for link tests"): each chunk read from one side is
written to the other side DELAY_MS after it was read, in order, in both
directions. It delays data, not TCP's own ACKs and handshakes, so loss
recovery looks better than on a real long link: treat goodput under loss as an
upper bound. Part of the test harness, not of Ferry.
"""

import asyncio
import os
import signal
import sys
import time

CHUNK = 16 * 1024
# At most this many chunks wait in one direction; the reader then waits, so a
# fast sender meets the slow link's back-pressure instead of filling memory.
QUEUE = 64
# A connection with no byte in either direction for this long is closed (a
# peer cut off by a link flap whose TCP never noticed).
IDLE_S = 180.0


async def pump(reader, writer, delay, last, budget=None):
    queue = asyncio.Queue(QUEUE)

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK)
                if budget is not None and data:
                    data = data[: max(0, budget[0])]
                    budget[0] -= len(data)
                    if budget[0] <= 0:
                        await queue.put((time.monotonic() + delay, data))
                        await queue.put((time.monotonic() + delay, None))
                        return
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
                last[0] = time.monotonic()
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), b""))

    async def write_side():
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    await writer.drain()
                    raise ConnectionError("cut")
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                last[0] = time.monotonic()
        except (ConnectionError, OSError):
            return

    await asyncio.gather(read_side(), write_side())


CUTS = []


async def handle(client_r, client_w, target, delay):
    try:
        server_r, server_w = await asyncio.wait_for(asyncio.open_connection(*target), 10)
    except (OSError, asyncio.TimeoutError):
        client_w.close()
        return
    last = [time.monotonic()]
    cut = CUTS.pop() if CUTS else None
    budget = [cut[1]] if cut else None
    down_cut = cut is not None and cut[0] == "down"
    up = pump(client_r, server_w, delay, last, None if down_cut else budget)
    both = asyncio.gather(up, pump(server_r, client_w, delay, last, budget if down_cut else None))
    if budget is not None:
        # The cut closes both sides at once, like a link that goes away.
        async def cut_watch():
            while budget[0] > 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(delay + 0.2)
            both.cancel()

        asyncio.ensure_future(cut_watch())

    async def watchdog():
        while True:
            await asyncio.sleep(5)
            if time.monotonic() - last[0] > IDLE_S:
                both.cancel()
                return

    dog = asyncio.ensure_future(watchdog())
    try:
        await both
    except (asyncio.CancelledError, ConnectionError, OSError):
        pass
    finally:
        dog.cancel()
        for w in (client_w, server_w):
            try:
                w.close()
            except OSError:
                pass


async def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    host, port, thost, tport, delay_ms = sys.argv[1:6]
    if len(sys.argv) == 7:
        arg = sys.argv[6]
        CUTS.append(("down", int(arg[5:])) if arg.startswith("down:") else ("up", int(arg)))
    target = (thost, int(tport))
    delay = int(delay_ms) / 1000.0
    server = await asyncio.start_server(lambda r, w: handle(r, w, target, delay), host, int(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print(f"relay {host}:{port} -> {thost}:{tport}, {delay_ms} ms each way", flush=True)
    async with server:
        await stop.wait()
        # Open connections would hold the shutdown: the lab wants the relay gone now.
        os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
