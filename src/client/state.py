"""The state file that lets an interrupted run resume without resending."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from client.plan import RunIdentity

STATE_FORMAT = 1
BUCKETS = ("success_numbers", "invalid_format_numbers", "error_numbers")

Buckets = dict[str, list[str]]


class StateFileError(Exception):
    """The state file is unreadable or belongs to another run."""


def state_path(results_path: Path) -> Path:
    """Return the state file kept beside ``results_path``."""
    return results_path.with_name(results_path.name + ".state.json")


class RunState:
    """Chunks already sent in a run, with the server's buckets for each.

    Every change is written to disk at once, through a temporary file and a
    rename, so that a crash leaves either the old or the new state.
    """

    def __init__(self, path: Path, identity: RunIdentity) -> None:
        self.path = path
        self.identity = identity
        self.chunks: dict[int, Buckets] = {}
        # Status URL of each chunk that the server queued instead of sending.
        self.status_urls: dict[int, str] = {}

    @classmethod
    def load(cls, path: Path, identity: RunIdentity) -> "RunState":
        """Return the state stored at ``path``, or an empty one if there is none.

        Raises StateFileError when the file is not a state file or was written
        for a different file content, domain, app, message, chunk size or URL.
        """
        state = cls(path, identity)
        if not path.exists():
            return state
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown format {stored.get('format')!r}")
            stored_identity = stored["run"]
            chunks = {
                int(index): {name: list(buckets[name]) for name in BUCKETS}
                for index, buckets in stored["chunks"].items()
            }
            status_urls = {
                int(index): str(buckets["status_url"])
                for index, buckets in stored["chunks"].items()
                if buckets.get("status_url")
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise StateFileError(
                f"State file {path} cannot be read ({error}). Delete it to start "
                f"over; numbers of the chunks it recorded would then be sent again."
            ) from None

        differences = [
            name
            for name, value in identity.as_dict().items()
            if stored_identity.get(name) != value
        ]
        if differences:
            raise StateFileError(
                f"State file {path} belongs to another run (different "
                f"{', '.join(differences)}). Use another --out for a new run, or "
                f"repeat the original command to resume that run."
            )
        state.chunks = chunks
        state.status_urls = status_urls
        return state

    def record_chunk(
        self, index: int, buckets: Buckets, status_url: str | None = None
    ) -> None:
        """Mark chunk ``index`` done with the server's ``buckets`` and save.

        ``status_url`` is the Location of a chunk that the server queued.
        """
        self.chunks[index] = {name: list(buckets[name]) for name in BUCKETS}
        if status_url:
            self.status_urls[index] = status_url
        self.save()

    def _chunk_content(self, index: int) -> dict[str, Any]:
        content: dict[str, Any] = dict(self.chunks[index])
        if index in self.status_urls:
            content["status_url"] = self.status_urls[index]
        return content

    def save(self) -> None:
        content: dict[str, Any] = {
            "format": STATE_FORMAT,
            "run": self.identity.as_dict(),
            "chunks": {
                str(index): self._chunk_content(index) for index in sorted(self.chunks)
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(content, stream, indent=1, ensure_ascii=False)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
