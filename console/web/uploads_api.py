"""POST /api/uploads: take images (or a whole folder) from the browser into a new folder under the data folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from flask import Blueprint, Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from ..diskfault import human_bytes
from ..messages import say, told
from ..uploads import Upload, UploadRefused, has_subfolders, refusal, remove_forgotten, uploads_root
from . import services
from .errors import ApiError

bp = Blueprint("uploads_api", __name__)
FIELD = "files"
MAX_BYTES_KEY = "UPLOAD_MAX_BYTES"  # app config: the largest whole upload
DEFAULT_MAX_BYTES = 8 * 1024**3
CHUNK_BYTES = 256 * 1024  # read and written at a time: an upload never sits in memory
DECODER_BUFFER_BYTES = 4 * CHUNK_BYTES  # one chunk and a part's headers: more is a malformed body
SKIPPED_SHOWN = 100
FORGOTTEN_AFTER_S = 7 * 24 * 3600  # an upload no run has used for a week was handed over by mistake


def init_app(app: Flask) -> None:
    """Register the upload route."""
    app.register_blueprint(bp)


@dataclass
class _Part:
    """The file being received: where it goes and how much of it may come."""

    relative: str
    file: BinaryIO | None
    limit: int
    size: int = 0


@bp.post("/api/uploads")
def upload():
    if request.mimetype != "multipart/form-data":
        got = (request.content_type or "")[:200]
        raise ApiError(say("sources.upload_not_multipart", field=FIELD, got=got) if got
                       else say("sources.upload_no_content_type", field=FIELD), 415)
    boundary = request.mimetype_params.get("boundary", "")
    if not boundary:
        raise ApiError(say("sources.upload_no_boundary"))
    limit = int(current_app.config.get(MAX_BYTES_KEY, DEFAULT_MAX_BYTES))
    request.max_content_length = limit  # this route only: the others keep the app's small limit
    engine = services.engine()
    files = Upload(uploads_root(engine.folder.path))
    try:
        _receive(request.stream, boundary.encode("latin-1"), files, services.settings().max_source_bytes)
        input_path = files.finish()
    except RequestEntityTooLarge:
        files.abandon()
        raise ApiError(say("sources.upload_too_big", limit=human_bytes(limit)), 413) from None
    except UploadRefused as exc:
        files.abandon()
        raise ApiError(told(exc)) from None
    except ValueError as exc:  # the decoder: a body cut short or not multipart at all
        files.abandon()
        raise ApiError(say("sources.upload_unreadable", reason=told(exc))) from None
    except BaseException as exc:
        files.abandon()
        fault = engine.folder.fault(exc)
        if fault is not None:  # a full data disk is 507, and the partial folder is gone
            raise fault from exc
        raise
    remove_forgotten(engine.folder.path, services.store(), FORGOTTEN_AFTER_S, keep=files.root / files.name)
    images = [name for name in files.written if not name.lower().endswith(".txt")]
    return {"input_path": str(input_path), "count": len(images), "skipped": files.skipped[:SKIPPED_SHOWN],
            "skipped_count": len(files.skipped), "recursive": has_subfolders(input_path)}


def _receive(stream: BinaryIO, boundary: bytes, files: Upload, max_source_bytes: int) -> None:
    """Write each file of the multipart `stream` into `files` as it arrives."""
    decoder = MultipartDecoder(boundary, max_form_memory_size=DECODER_BUFFER_BYTES)
    part: _Part | None = None
    while True:
        chunk = stream.read(CHUNK_BYTES)
        try:
            decoder.receive_data(chunk or None)
        except RequestEntityTooLarge:
            raise ValueError(say("sources.upload_headers_endless")) from None
        event = decoder.next_event()
        while not isinstance(event, (NeedData, Epilogue)):
            if isinstance(event, File):
                part = _start(files, event, max_source_bytes)
            elif isinstance(event, Field):
                part = None
            elif isinstance(event, Data) and part is not None:
                _write(files, part, event)
            event = decoder.next_event()
        if isinstance(event, Epilogue):
            return
        if not chunk:
            raise ValueError(say("sources.upload_cut_short"))


def _start(files: Upload, event: File, max_source_bytes: int) -> _Part | None:
    if event.name != FIELD:
        return None
    relative, reason, limit = refusal(event.filename or "", max_source_bytes)
    if relative is None:
        files.skip(event.filename or say("sources.upload_no_name"), reason)
        return None
    handle = files.open(relative)
    return None if handle is None else _Part(relative, handle, limit)


def _write(files: Upload, part: _Part, event: Data) -> None:
    if part.file is not None:
        part.size += len(event.data)
        if part.size > part.limit:
            part.file.close()
            part.file = None
            files.drop(part.relative, say("sources.upload_file_too_big", limit=human_bytes(part.limit)))
        else:
            part.file.write(event.data)
    if not event.more_data and part.file is not None:
        part.file.close()
        part.file = None
        files.written.append(part.relative)
