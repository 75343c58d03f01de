"""Each browser session's tracks, apart from the cached runs every session shares.

A cached run (vggt_mv.pipeline) never holds tracks, so one session's clicks cannot show up in another's redraw.
What a session tracked lives here, keyed by the digest of its session id (never the client's raw string): the run's
key and its track arrays only (the run's big arrays stay in the cache, once), for the most recent sessions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

# Sessions whose tracks are kept; the oldest session's tracks go first (it clicks again or runs with points).
SESSION_TRACKS_LIMIT = 32


class SessionTracks:
    """session digest -> (run key, track arrays), least recently used first, at most `limit` sessions."""

    def __init__(self, limit: int = SESSION_TRACKS_LIMIT) -> None:
        self.limit = limit
        self._tracks: OrderedDict[str, tuple[str, dict[str, np.ndarray]]] = OrderedDict()
        self._lock = threading.Lock()  # Gradio runs handlers of different sessions in different threads

    def put(self, session: str, key: str, tracks: dict[str, np.ndarray]) -> None:
        """This session now shows these tracks on run `key` ({} forgets them)."""
        with self._lock:
            if not tracks:
                self._tracks.pop(session, None)
                return
            self._tracks[session] = (key, dict(tracks))
            self._tracks.move_to_end(session)
            while len(self._tracks) > self.limit:
                self._tracks.popitem(last=False)

    def get(self, session: str, key: str) -> dict[str, np.ndarray]:
        """The session's tracks on run `key`, {} when it has none there."""
        with self._lock:
            kept_key, tracks = self._tracks.get(session, (None, {}))
            if kept_key != key:
                return {}
            self._tracks.move_to_end(session)
            return tracks

    def drop(self, session: str) -> None:
        """The session ended (or cleared its tracks): forget them."""
        with self._lock:
            self._tracks.pop(session, None)

    def sessions(self) -> list[str]:
        """The sessions with tracks, oldest first."""
        with self._lock:
            return list(self._tracks)

    def clear(self) -> None:
        """Forget every session's tracks."""
        with self._lock:
            self._tracks.clear()
