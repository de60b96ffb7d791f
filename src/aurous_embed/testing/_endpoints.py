"""The seven endpoints. Each is ``async (app, request, ctx) -> Reply`` and raises ``ApiError``.

[NOT FOUND] choices made here: ``POST /v1/files`` answers 200 (like embeddings); ``DELETE``
answers ``{"id", "object": "file", "deleted": true}``; an upload without ``metadata`` shows
``"metadata": null``; the idempotency body of an upload is the canonical JSON of purpose,
metadata and the file's SHA-256 (multipart framing and file name do not count). A signed file
url that is expired, forged or points at a deleted file fails the embedding request with 400
``image_fetch_failed`` and ``param`` naming the part (fetch failure codes are not documented).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import TYPE_CHECKING, Any

from aurous_embed._config import (
    CHAT_MODEL,
    CONTEXT_WINDOW_TOKENS,
    DEFAULT_MODEL,
    MAX_IMAGE_BYTES,
    SUPPORTED_DIMENSIONS,
    TEXT_CREDITS_PER_M,
    VISUAL_CREDITS_PER_M,
)
from aurous_embed.testing._app import TEAM, Reply, json_reply
from aurous_embed.testing._billing import price
from aurous_embed.testing._clock import DEFAULT_START
from aurous_embed.testing._envelope import (
    INVALID_FORMAT,
    INVALID_REQUEST,
    MISSING_FIELD,
    NOT_FOUND,
    RATE_LIMIT,
    VALUE_OUT_OF_RANGE,
    ApiError,
    canonical_json,
    dumps,
    invalid,
    loads,
)
from aurous_embed.testing._files import PURPOSES, is_file_url
from aurous_embed.testing._imaging import ImageProblem, inspect_image
from aurous_embed.testing._stats import Charge
from aurous_embed.testing._validation import (
    ImageBytesPart,
    ImageUrlPart,
    Part,
    TextPart,
    check_dimensions,
    check_model,
    token_counts,
    too_large,
    validate_embedding_body,
)
from aurous_embed.testing._vectors import ImageItem, Item, TextItem, UrlItem

if TYPE_CHECKING:
    from starlette.requests import Request

    from aurous_embed.testing._app import Context, EmulatorApp
    from aurous_embed.testing._idempotency import Record

MAX_BODY_BYTES = 256 * 1024 * 1024  # [NOT FOUND] no documented body limit; a generous guard
#: [NOT FOUND] the largest `/v1/files` body: the 10 MB file plus its form fields.
MAX_UPLOAD_BYTES = MAX_IMAGE_BYTES + 1024 * 1024
#: [ASSUMPTION] the API's timeouts are not documented: the most a request body may take to arrive.
BODY_TIMEOUT = 30.0
MODEL_CREATED = int(DEFAULT_START)  # [NOT FOUND] `created` is undocumented: the v1.0 date


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, INVALID_REQUEST, "request_too_large", f"Request body is over {limit} bytes."
    )


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (default
    ``MAX_BODY_BYTES``; declared or chunked) or takes longer than ``BODY_TIMEOUT`` seconds."""
    limit = MAX_BODY_BYTES if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), BODY_TIMEOUT)  # a module global: tests lower it
    except asyncio.TimeoutError:
        raise ApiError(
            408,
            INVALID_REQUEST,
            "request_timeout",
            f"The request body did not arrive within {BODY_TIMEOUT:g} s.",
        ) from None
    return b"".join(chunks)


async def _json_body(request: Request) -> Any:
    return loads(await read_body(request))


async def estimate(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``POST /v1/embeddings/estimate``: same validation, no charge, no idempotency."""
    app.prelude(ctx, write=True)
    body = validate_embedding_body(
        await _json_body(request), accept_video=app.settings.accept_video
    )
    check_model(body.model)
    check_dimensions(body.dimensions)
    text, image = token_counts(body.parts, app.settings.tokens_per_image)
    if text + image > CONTEXT_WINDOW_TOKENS:
        raise too_large(text + image, CONTEXT_WINDOW_TOKENS)
    await app.work(ctx)
    cost = price(text, image)
    return json_reply(
        {
            "estimated": True,
            "tokens": {"text": text, "image": image, "video": 0, "total": text + image},
            "credits_estimated": cost.total,
            "breakdown": cost.breakdown(body.model),
        }
    )


async def embeddings(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``POST /v1/embeddings``: one vector for the whole input, billed once."""
    app.prelude(ctx, write=True)
    payload = await _json_body(request)
    body = validate_embedding_body(payload, accept_video=app.settings.accept_video)
    check_model(body.model)
    check_dimensions(body.dimensions)
    key = app.idempotency_key(ctx)
    record: Record | None = None
    if key is not None:
        found = app.begin_idempotent(ctx, key, canonical_json(payload))
        if isinstance(found, Reply):
            return found
        record = found
    try:
        text, image = token_counts(body.parts, app.settings.tokens_per_image)
        total = text + image
        if total > CONTEXT_WINDOW_TOKENS:
            raise too_large(total, CONTEXT_WINDOW_TOKENS)
        cost = price(text, image)
        now = app.clock()
        with app.cond:
            if not app.tpm.take(total, now):
                wait = app.tpm.retry_after(total, now)
                raise ApiError(
                    429,
                    RATE_LIMIT,
                    "tpm_rate_limit_exceeded",
                    f"Tokens-per-minute limit exceeded ({total} tokens requested). "
                    f"Retry after {wait}s.",
                    retry_after=wait,
                )
            available = app.credits - app.held
            if available < cost.total:
                raise ApiError(
                    402,
                    INVALID_REQUEST,
                    "balance_too_low",
                    f"Team available balance is {round(available, 10)} credits, embedding "
                    f"requires {cost.total}.",
                )
            app.held += cost.total  # [INFERRED] held before the model call, committed after
        try:
            await app.work(ctx)
            items = _resolve(app, body.parts)
            vector = app.embedder.embed_json(items)
        except BaseException:
            with app.cond:
                app.held -= cost.total
            raise
        response = b"".join(
            (
                b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":',
                vector,
                b'}],"model":',
                dumps(body.model),
                b',"usage":',
                dumps(
                    {
                        "prompt_tokens": total,
                        "total_tokens": total,
                        "credits_charged": cost.total,
                        "breakdown": cost.breakdown(body.model),
                    }
                ),
                b"}",
            )
        )
        with app.cond:  # one atomic commit: the charge and the stored record together
            app.held -= cost.total
            app.credits = round(app.credits - cost.total, 10)
            charge = Charge(
                ctx.request_id, key, body.model, text, image, total, cost.total, app.clock()
            )
            app.stats.ledger.append(charge)
            if key is not None and record is not None:
                app.idempotency.complete(TEAM, key, record, 200, response, ctx.request_id)
        return Reply(200, response)
    except BaseException:
        app.release_idempotent(key, record)
        raise


def _resolve(app: EmulatorApp, parts: tuple[Part, ...]) -> list[Item]:
    """Turn validated parts into vector inputs; emulator file urls come from the store."""
    items: list[Item] = []
    for part in parts:
        if isinstance(part, TextPart):
            items.append(TextItem(part.text))
        elif isinstance(part, ImageBytesPart):
            items.append(ImageItem(part.sha256, app.grid(part.sha256, part.data, part.path)))
        elif isinstance(part, ImageUrlPart) and is_file_url(part.url):
            with app.cond:
                try:
                    stored = app.files.resolve(part.url, app.clock())
                except LookupError as exc:
                    raise invalid(
                        "image_fetch_failed", f"Could not fetch the image: {exc}.", part.path
                    ) from None
            items.append(ImageItem(stored.sha256, app.grid(stored.sha256, stored.data, part.path)))
        else:
            # [ASSUMPTION] no network: an outside url is embedded from its path words.
            items.append(
                UrlItem("image_url" if isinstance(part, ImageUrlPart) else "video_url", part.url)
            )
    return items


_MODELS = dumps(
    {
        "object": "list",
        "data": [
            {
                "id": DEFAULT_MODEL,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": "aurous-labs",
                "kind": "embedding",
                "aurous_metadata": {
                    "kind": "embedding",
                    "context_window": CONTEXT_WINDOW_TOKENS,
                    "dimensions": list(SUPPORTED_DIMENSIONS),
                    "max_input_items": 100,  # [DOC-CONFLICT] documented sample; 16 is enforced
                    "capabilities": ["multimodal_input"],
                },
                "chat_pricing": None,
                "embedding_pricing": {
                    "text": {"credits_per_M": TEXT_CREDITS_PER_M},
                    "visual": {"credits_per_M": VISUAL_CREDITS_PER_M},
                },
            },
            {
                "id": CHAT_MODEL,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": "aurous-labs",
                "kind": "chat",
                "aurous_metadata": {
                    "kind": "chat",
                    "context_window": 256_000,
                    "dimensions": None,
                    "capabilities": ["multimodal_input", "reasoning_effort"],
                },
                "chat_pricing": {"input": {"credits_per_M": 75}, "output": {"credits_per_M": 450}},
                "embedding_pricing": None,
            },
        ],
    }
)


async def models(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``GET /v1/models``: the embedding and the chat model, as documented."""
    app.prelude(ctx, write=False)
    await app.work(ctx)
    return Reply(200, _MODELS)


async def balance(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``GET /v1/balance``."""
    app.prelude(ctx, write=False)
    await app.work(ctx)
    with app.cond:
        credits, held = app.credits, app.held
    return json_reply(
        {
            "credits": round(credits, 10),
            "held_credits": round(held, 10),
            "available_credits": round(credits - held, 10),
            "currency": "credit",
            "billing_mode": "metered",
        }
    )


def _replay(body: bytes) -> Any:
    """An ASGI ``receive`` that hands out a body already read."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def upload_file(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``POST /v1/files`` (multipart: ``file``, ``purpose``, optional ``metadata``)."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    app.prelude(ctx, write=True)
    try:
        body = await read_body(request, MAX_UPLOAD_BYTES)
    except ApiError as error:
        if error.status != 413:
            raise
        raise invalid(VALUE_OUT_OF_RANGE, "file is over the 10 MB limit.", "file") from None
    from starlette.requests import Request as StarletteRequest

    replayed = StarletteRequest(request.scope, _replay(body))  # the form parser reads it again
    try:
        form = await replayed.form(max_files=1, max_fields=8, max_part_size=1024 * 1024)
    except (MultiPartException, HTTPException) as exc:
        raise invalid(INVALID_FORMAT, f"Malformed multipart body: {exc}.", None) from None
    try:
        upload = form.get("file")
        if upload is None:
            raise invalid(MISSING_FIELD, "file is required.", "file")
        if not isinstance(upload, UploadFile):
            raise invalid(INVALID_FORMAT, "file must be a file part.", "file")
        data = await upload.read()
    finally:
        await form.close()
    purpose = form.get("purpose")
    if purpose is None:
        raise invalid(MISSING_FIELD, "purpose is required.", "purpose")
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise invalid(INVALID_FORMAT, f"purpose must be one of {', '.join(PURPOSES)}.", "purpose")
    metadata = _metadata(form.get("metadata"))
    try:
        info = inspect_image(data)
    except ImageProblem as problem:
        raise invalid(problem.code, problem.message + ".", "file") from None
    key = app.idempotency_key(ctx)
    record: Record | None = None
    if key is not None:
        canonical = canonical_json(
            {
                "purpose": purpose,
                "metadata": metadata,
                "file_sha256": hashlib.sha256(data).hexdigest(),
            }
        )
        found = app.begin_idempotent(ctx, key, canonical)
        if isinstance(found, Reply):
            return found
        record = found
    try:
        await app.work(ctx)
        with app.cond:
            now = app.clock()
            stored = app.files.add(
                purpose=purpose,
                mime_type=info.mime,
                data=data,
                width=info.width,
                height=info.height,
                metadata=metadata,
                now=now,
            )
            body = dumps(app.files.public(stored, now))
            if key is not None and record is not None:
                app.idempotency.complete(TEAM, key, record, 200, body, ctx.request_id)
        return Reply(200, body)
    except BaseException:
        app.release_idempotent(key, record)
        raise


def _metadata(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise invalid(INVALID_FORMAT, "metadata must be a JSON-encoded object.", "metadata")
    return value


def _file_id(request: Request) -> str:
    return str(request.scope["path"]).rsplit("/", 1)[-1]


async def get_file(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``GET /v1/files/{id}``: the file object with a freshly minted url."""
    app.prelude(ctx, write=False)
    await app.work(ctx)
    file_id = _file_id(request)
    with app.cond:
        now = app.clock()
        stored = app.files.get(file_id, now)
        if stored is None:
            raise ApiError(404, NOT_FOUND, "resource_not_found", f"No file {file_id}.")
        return json_reply(app.files.public(stored, now))


async def delete_file(app: EmulatorApp, request: Request, ctx: Context) -> Reply:
    """``DELETE /v1/files/{id}``: purge now; 200 even if already gone [DOC]."""
    app.prelude(ctx, write=True)
    await app.work(ctx)
    file_id = _file_id(request)
    with app.cond:
        app.files.delete(file_id)
    return json_reply({"id": file_id, "object": "file", "deleted": True})
