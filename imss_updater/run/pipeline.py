"""The download pipeline: the bytes of a package go, as they arrive, to the SHA-256 of the
replay memory, to openssl's signature check and to the streaming unpacker, each in its own
thread behind a short queue (the network waits when one falls behind; memory stays
bounded). Nothing here activates anything: the caller installs only after ``finish`` says
the whole package arrived, and after its signature verified.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from imss_updater.i18n import N_, Reason
from imss_updater.source import signature
from imss_updater.store.stream_unpack import StreamUnpacker

log = logging.getLogger(__name__)

UNPACK = "package-unpack"
QUEUED_CHUNKS = 4  # per consumer; chunks are shared, so at most this many MiB each


class _Consumer:
    """One thread that applies ``consume`` to every chunk put, in order. An exception stops
    the consuming (the rest is drained) and is kept for the owner to judge."""

    def __init__(self, name: str, consume: Callable[[bytes], None]) -> None:
        self.name = name
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        """Wait until every chunk put is consumed (or dropped after an error)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._consume(chunk)
                except BaseException as error:  # kept and judged by the owner in finish()
                    self.error = error


class Pipeline:
    """The consumers of one package download (``HttpClient.download``'s tee): ``restart``
    before each attempt, ``feed`` each chunk, then ``finish`` once, or ``abort``."""

    def __init__(
        self,
        signature_file: Path | None,
        trust_file: Path | None,
        unpack_work: Path,
        max_unpacked_bytes: int,
    ) -> None:
        """``signature_file`` None: an unsigned package, no signature check."""
        self._signature_file = signature_file
        self._trust_file = trust_file
        self._work = unpack_work
        self._limit = max_unpacked_bytes
        self._consumers: list[_Consumer] = []
        self._verification: signature.StreamedVerification | None = None
        self._digest = hashlib.sha256()
        self.unpacker = StreamUnpacker(unpack_work, max_unpacked_bytes)
        self._started = False

    def restart(self) -> None:
        """Start the consumers afresh (a retried download sends every byte again). Raise
        SignatureError if openssl cannot be started or its files are missing."""
        if self._started:
            self.abort()
        self._started = True
        self._digest = hashlib.sha256()
        self.unpacker = StreamUnpacker(self._work, self._limit)
        self._consumers = [_Consumer("package-sha256", self._digest.update),
                           _Consumer(UNPACK, self.unpacker.feed)]
        if self._signature_file is not None:
            self._verification = signature.StreamedVerification(self._signature_file,
                                                                self._trust_file)
            self._consumers.append(_Consumer("package-signature", self._verification.feed))

    def feed(self, chunk: bytes) -> None:
        for consumer in self._consumers:
            consumer.put(chunk)

    def finish(self, *, timeout: float = 300.0) -> str:
        """Once every byte was fed: wait for the consumers and return the package's SHA-256
        (hex). Raise SignatureError if the signature does not verify (openssl's verdict,
        then the signer checks)."""
        if not self._started:
            self.restart()  # an empty package: still checked
        for consumer in self._consumers:
            consumer.close()
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            if consumer.error is None:
                continue
            if consumer.name == UNPACK:  # the classic unpack runs instead
                log.warning("streaming unpack failed: %s", consumer.error)
                self.unpacker.stop(f"failed: {consumer.error}")
            else:
                self.abort()
                raise signature.SignatureError(Reason(N_("cannot verify the package: %(reason)s"),
                                                      {"reason": _said(consumer.error)}))
        if self._verification is not None:
            verification, self._verification = self._verification, None
            verification.finish(timeout=timeout)
        if self.unpacker.stopped is not None:
            log.debug("streaming unpack stopped: %s", self.unpacker.stopped)
        return self._digest.hexdigest()

    def abort(self) -> None:
        """Stop every consumer and openssl; drop the streamed files."""
        for consumer in self._consumers:
            consumer.close()
        self._consumers = []
        if self._verification is not None:
            verification, self._verification = self._verification, None
            verification.abort()
        self.unpacker.close()


def _said(error: BaseException) -> str | Reason:
    """What a failed consumer said: its Reason when it has one, its text otherwise."""
    why = getattr(error, "why", None)
    return why if isinstance(why, (str, Reason)) else str(error)
