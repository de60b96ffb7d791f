"""Public result shapes: what the client returns.

Plain frozen dataclasses, built by tolerant parsers: optional fields the API leaves out become
``None``/zero rather than errors, and unknown fields are ignored (the raw JSON stays available where
it is useful).
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Balance",
    "EmbeddingResult",
    "Estimate",
    "EstimateTokens",
    "FileObject",
    "ModelInfo",
    "Usage",
    "UsageBreakdown",
    "UsageTotals",
]


@dataclass(frozen=True, slots=True)
class UsageBreakdown:
    """Credits per modality (``usage.breakdown.input``); they add up to ``credits_charged``."""

    text: float = 0.0
    visual: float = 0.0
    video: float = 0.0
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and credits of one embedding call, as the API reports them."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    credits_charged: float = 0.0
    breakdown: UsageBreakdown = field(default_factory=UsageBreakdown)


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One input's vector and what it cost.

    Attributes:
        embedding: the vector, Python floats, at the model's native length.
        model: the model slug the API echoed.
        usage: tokens and credits (``usage.credits_charged`` is the authoritative figure).
        request_id: ``Aurous-Request-Id``; quote it in support tickets.
        replayed: ``True`` when the API replayed a stored answer for this idempotency key.
        api_version: the ``Aurous-Version`` the API applied.
        idempotency_key: the key this call was sent with (the same on every retry).
        cached: ``True`` when the result came from the local embedding cache (nothing was sent).
    """

    embedding: list[float]
    model: str
    usage: Usage
    request_id: str | None = None
    replayed: bool = False
    api_version: str | None = None
    idempotency_key: str | None = None
    cached: bool = False

    def __repr__(self) -> str:
        head = ", ".join(f"{x:.4f}" for x in self.embedding[:3])
        return (
            f"EmbeddingResult(embedding=[{head}, ...] ({len(self.embedding)} floats), "
            f"model={self.model!r}, usage={self.usage!r}, request_id={self.request_id!r}, "
            f"replayed={self.replayed}, cached={self.cached})"
        )


@dataclass(frozen=True, slots=True)
class EstimateTokens:
    """Per-modality token counts of an estimate (the API says ``image`` here, ``visual`` elsewhere)."""

    text: int = 0
    image: int = 0
    video: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """The answer of ``POST /v1/embeddings/estimate``: an upper bound, nothing charged."""

    tokens: EstimateTokens
    credits_estimated: float
    breakdown: UsageBreakdown
    request_id: str | None = None
    api_version: str | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A row of ``GET /v1/models``.

    Attributes:
        dimensions: the supported ``dimensions`` values, or ``None`` for a fixed output size.
        text_credits_per_m / visual_credits_per_m: the caller's effective embedding rates
            (``None`` on chat models).
        raw: the row exactly as received.
    """

    id: str
    kind: str | None
    context_window: int | None = None
    dimensions: tuple[int, ...] | None = None
    max_input_items: int | None = None
    capabilities: tuple[str, ...] = ()
    text_credits_per_m: float | None = None
    visual_credits_per_m: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Running totals of a client (``client.usage``): what this client was actually charged.

    Attributes:
        requests: embedding answers received (a replay included).
        prompt_tokens: tokens charged.
        credits_charged: credits charged, as the answers said (a replay is not counted twice).
        unconfirmed_credits: the estimated (upper-bound) cost of calls that failed after a
            request may have reached the server without an answer (a connection reset after the
            request was sent, a timeout, an answer cut short): the server may or may not have
            charged them. ``max_credits`` counts them as spent.
        bytes_sent: request body bytes of the embedding requests this client started to send
            (each input's once: a retry is not counted again; an input never sent, not at all),
            e.g. to see what ``Image(..., max_side=...)`` saves.
        requests_sent: embedding requests this client started to send, every attempt (retries,
            and requests answered with an error or not at all, included). An attempt cut short
            by a cancel (``break``, ``close()``, Ctrl-C) counts although it may not have reached
            the server: the count is an upper bound of what the server received.
    """

    requests: int = 0
    prompt_tokens: int = 0
    credits_charged: float = 0.0
    unconfirmed_credits: float = 0.0
    bytes_sent: int = 0
    requests_sent: int = 0


@dataclass(frozen=True, slots=True)
class Balance:
    """``GET /v1/balance``. ``billing_mode`` is an open enum; unknown values do not gate."""

    credits: float
    held_credits: float
    available_credits: float
    currency: str = "credit"
    billing_mode: str | None = None


@dataclass(frozen=True, slots=True)
class FileObject:
    """An uploaded file (``POST /v1/files``); ``url`` is a signed https URL valid about an hour."""

    id: str
    url: str
    purpose: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None
    width_px: int | None = None
    height_px: int | None = None
    expires_at: str | None = None
    created_at: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


# --- tolerant parsers ------------------------------------------------------------------------


def _num(value: Any, default: float = 0.0) -> float:
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_breakdown(value: Any) -> UsageBreakdown:
    data = _mapping(value)
    modal = _mapping(data.get("input"))
    model = data.get("model")
    return UsageBreakdown(
        text=_num(modal.get("text")),
        visual=_num(modal.get("visual")),
        video=_num(modal.get("video")),
        model=model if isinstance(model, str) else None,
    )


def parse_usage(value: Any) -> Usage:
    data = _mapping(value)
    prompt = _int(data.get("prompt_tokens")) or 0
    return Usage(
        prompt_tokens=prompt,
        total_tokens=_int(data.get("total_tokens")) or prompt,
        credits_charged=_num(data.get("credits_charged")),
        breakdown=parse_breakdown(data.get("breakdown")),
    )


def decode_embedding(value: Any) -> list[float]:
    """Accept a float list or a base64 string of little-endian float32 values."""
    if isinstance(value, list):
        # JSON may hold ints (0, 1); float() of a float is the same object, and map runs in C.
        return list(map(float, value))
    if isinstance(value, str):
        floats = array.array("f")
        floats.frombytes(base64.b64decode(value))
        if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
            floats.byteswap()
        return floats.tolist()
    raise ValueError(f"embedding is neither a float list nor a base64 string: {type(value)}")


def parse_embedding_response(
    data: Any,
    *,
    request_id: str | None,
    replayed: bool,
    api_version: str | None,
    idempotency_key: str | None,
    fallback_model: str,
) -> EmbeddingResult:
    """Build an EmbeddingResult from a 2xx body; raise ValueError if it has no vector."""
    body = _mapping(data)
    rows = body.get("data")
    if not isinstance(rows, list) or not rows:
        raise ValueError("the response has no data[0].embedding")
    embedding = decode_embedding(_mapping(rows[0]).get("embedding"))
    model = body.get("model")
    return EmbeddingResult(
        embedding=embedding,
        model=model if isinstance(model, str) else fallback_model,
        usage=parse_usage(body.get("usage")),
        request_id=request_id,
        replayed=replayed,
        api_version=api_version,
        idempotency_key=idempotency_key,
    )


def parse_estimate(data: Any, *, request_id: str | None, api_version: str | None) -> Estimate:
    body = _mapping(data)
    tokens = _mapping(body.get("tokens"))
    text, image, video = (_int(tokens.get(k)) or 0 for k in ("text", "image", "video"))
    return Estimate(
        tokens=EstimateTokens(
            text=text, image=image, video=video, total=_int(tokens.get("total")) or text + image
        ),
        credits_estimated=_num(body.get("credits_estimated")),
        breakdown=parse_breakdown(body.get("breakdown")),
        request_id=request_id,
        api_version=api_version,
    )


def parse_model(row: Any) -> ModelInfo | None:
    data = _mapping(row)
    model_id = data.get("id")
    if not isinstance(model_id, str):
        return None
    meta = _mapping(data.get("aurous_metadata"))
    # The docs disagree on where `kind` lives: read the top level first, then aurous_metadata.
    kind = data.get("kind", meta.get("kind"))
    dims = meta.get("dimensions")
    caps = meta.get("capabilities")
    pricing = _mapping(data.get("embedding_pricing"))
    text_rate = _mapping(pricing.get("text")).get("credits_per_M")
    visual_rate = _mapping(pricing.get("visual")).get("credits_per_M")
    return ModelInfo(
        id=model_id,
        kind=kind if isinstance(kind, str) else None,
        context_window=_int(meta.get("context_window")),
        dimensions=tuple(d for d in dims if _int(d)) if isinstance(dims, list) else None,
        max_input_items=_int(meta.get("max_input_items")),
        capabilities=tuple(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else (),
        text_credits_per_m=_num(text_rate) if text_rate is not None else None,
        visual_credits_per_m=_num(visual_rate) if visual_rate is not None else None,
        raw=data,
    )


def parse_balance(data: Any) -> Balance:
    body = _mapping(data)
    credits = _num(body.get("credits"))
    held = _num(body.get("held_credits"))
    mode = body.get("billing_mode")
    currency = body.get("currency")
    return Balance(
        credits=credits,
        held_credits=held,
        available_credits=_num(body.get("available_credits"), credits - held),
        currency=currency if isinstance(currency, str) else "credit",
        billing_mode=mode if isinstance(mode, str) else None,
    )


def parse_file(data: Any) -> FileObject:
    body = _mapping(data)

    def text(key: str) -> str | None:
        value = body.get(key)
        return value if isinstance(value, str) else None

    return FileObject(
        id=text("id") or "",
        url=text("url") or "",
        purpose=text("purpose"),
        mime_type=text("mime_type"),
        size_bytes=_int(body.get("size_bytes")),
        width_px=_int(body.get("width_px")),
        height_px=_int(body.get("height_px")),
        expires_at=text("expires_at"),
        created_at=text("created_at"),
        metadata=_mapping(body.get("metadata")),
    )
