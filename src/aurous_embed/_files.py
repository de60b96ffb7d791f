"""The ``/v1/files`` and ``/v1/models`` pieces without I/O: the upload form, file ids, model lists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aurous_embed._errors import (
    InputValidationError,
)
from aurous_embed._image_sources import sniff_mime
from aurous_embed._images import encode_image
from aurous_embed.types import (
    ModelInfo,
    parse_model,
)

if TYPE_CHECKING:
    pass


def parse_models(data: Any) -> list[ModelInfo]:
    rows = data.get("data") if isinstance(data, dict) else None
    return [m for m in map(parse_model, rows if isinstance(rows, list) else []) if m]


def check_file_id(file_id: object) -> str:
    if not isinstance(file_id, str) or not file_id or "/" in file_id:
        raise InputValidationError(f"not a file id: {file_id!r}", param="file_id")
    return file_id


_PURPOSES = ("reference", "first_frame", "last_frame")


def upload_form(
    image: object, purpose: str, metadata: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    if purpose not in _PURPOSES:
        raise InputValidationError(
            f"purpose must be one of {', '.join(_PURPOSES)}", param="purpose"
        )
    data = encode_image(image, fit=True, param="file")
    mime = sniff_mime(data) or "application/octet-stream"
    name = "image." + mime.rsplit("/", 1)[-1]
    form = {"purpose": purpose}
    if metadata is not None:
        try:
            form["metadata"] = json.dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise InputValidationError(
                f"metadata is not JSON-serialisable: {exc}", param="metadata"
            ) from None
    return {"file": (name, data, mime)}, form
