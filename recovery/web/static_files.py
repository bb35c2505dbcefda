"""Static files gzipped once in memory and served with far-future caching.

Flask-Compress's streaming mode (needed for send_file responses) leaves the file open, so the few
static files we have are compressed here instead; URLs carry a content hash (`asset()`), so a year
of caching is safe."""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from pathlib import Path

from flask import Flask, Response, abort, request
from werkzeug.security import safe_join

_lock = threading.Lock()


class _Entry:
    def __init__(self, path: Path):
        self.raw = path.read_bytes()
        self.gz = gzip.compress(self.raw, compresslevel=9, mtime=0)
        self.etag = hashlib.sha256(self.raw).hexdigest()[:16]
        self.mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.mtime = path.stat().st_mtime


def init_app(app: Flask) -> None:
    cache: dict[str, _Entry] = {}
    max_age = 31536000

    def static(filename: str):
        joined = safe_join(app.static_folder, filename)
        try:
            found = joined is not None and Path(joined).is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte
            found = False
        if not found:
            abort(404)
        path = Path(joined)
        with _lock:
            entry = cache.get(filename)
            if entry is None or entry.mtime != path.stat().st_mtime:
                entry = cache[filename] = _Entry(path)
        gz = "gzip" in request.headers.get("Accept-Encoding", "") and len(entry.gz) < len(entry.raw)
        resp = Response(entry.gz if gz else entry.raw, mimetype=entry.mimetype)
        if gz:
            resp.headers["Content-Encoding"] = "gzip"
        resp.vary.add("Accept-Encoding")
        resp.cache_control.public = True
        resp.cache_control.max_age = max_age
        resp.set_etag(entry.etag + ("-gz" if gz else ""))
        return resp.make_conditional(request)

    app.view_functions["static"] = static
