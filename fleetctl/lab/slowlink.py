"""A user-space TCP proxy that makes a link slow: fixed delay and a bandwidth cap.

The kernels this lab runs on have no ``netem``, so a slow link is simulated by
putting this proxy in front of a host's sshd. Every chunk read in either
direction is delivered ``delay`` ms later, in order; with ``kbps`` the writer
sleeps long enough after each chunk to hold the rate. Byte counts per
direction are kept in a JSON stats file (rewritten every 0.2 s while bytes
flow), so tests can count what crossed, even mid-transfer.

Run as ``python -m fleetctl.lab.slowlink LISTEN TARGET --delay-ms N --kbps N --stats FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

CHUNK = 16 * 1024
#: seconds between writes of the stats file while bytes flow
SAVE_EVERY = 0.2


class Link:
    """Delay and bandwidth settings, and the byte counters of every connection."""

    def __init__(self, delay_ms: float, kbps: float, stats: Path | None) -> None:
        self.delay = delay_ms / 1000
        self.bytes_per_s = kbps * 1000 / 8 if kbps > 0 else 0.0
        self.stats = stats
        self.counts = {"up": 0, "down": 0, "connections": 0}
        self.saved_at = 0.0

    def save(self) -> None:
        self.saved_at = time.monotonic()
        if self.stats:
            tmp = self.stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.counts))
            tmp.replace(self.stats)

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   direction: str) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                self.counts[direction] += len(data)
                if time.monotonic() - self.saved_at > SAVE_EVERY:
                    self.save()
                if self.bytes_per_s:
                    await asyncio.sleep(len(data) / self.bytes_per_s)
            if writer.can_write_eof():
                writer.write_eof()

        delivery = asyncio.create_task(deliver())
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((time.monotonic() + self.delay, data))
        except ConnectionError:
            pass
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(ConnectionError):
            await delivery

    async def handle(self, client_r, client_w, target: tuple[str, int]) -> None:
        self.counts["connections"] += 1
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self.pump(client_r, server_w, "up"),
                             self.pump(server_r, client_w, "down"))
        for w in (client_w, server_w):
            w.close()
        self.save()


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _serve(listen: tuple[str, int], target: tuple[str, int], link: Link) -> None:
    server = await asyncio.start_server(lambda r, w: link.handle(r, w, target), *listen,
                                        reuse_address=True)
    link.save()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    link.save()


def main() -> None:
    """Entry point of the proxy process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("listen")
    parser.add_argument("target")
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--kbps", type=float, default=0)
    parser.add_argument("--stats", type=Path)
    args = parser.parse_args()
    link = Link(args.delay_ms, args.kbps, args.stats)
    asyncio.run(_serve(_addr(args.listen), _addr(args.target), link))


if __name__ == "__main__":
    main()
