"""The exception tree and the mapping from the API's error envelope to it.

::

    AurousError
    ├── APIError
    │   ├── APIStatusError                   any non-2xx answer; carries the error envelope
    │   │   ├── BadRequestError              400 / 422 (type invalid_request)
    │   │   │   ├── UnsupportedDimensionsError   embeddings_unsupported_dimensions
    │   │   │   ├── BatchInputNotSupportedError  embeddings_batch_not_supported
    │   │   │   ├── TooManyInputItemsError       embeddings_input_too_many_items
    │   │   │   ├── InputTooLargeError           embeddings_input_too_large
    │   │   │   ├── VideoUnsupportedError        embeddings_video_unsupported
    │   │   │   └── WrongModelKindError          model_wrong_kind
    │   │   ├── AuthenticationError          401
    │   │   ├── InsufficientCreditsError     402 balance_too_low
    │   │   ├── PermissionDeniedError        403
    │   │   ├── NotFoundError                404 / 410
    │   │   ├── IdempotencyConflictError     409 idempotency_key_in_use
    │   │   ├── RateLimitError               429, and 503 with type rate_limit
    │   │   └── InternalServerError          other 5xx
    │   └── APIConnectionError               transport failure, no answer
    │       └── APITimeoutError
    ├── InputValidationError (ValueError)    bad input caught before anything is sent
    ├── MissingAPIKeyError (ValueError)      no key given and AUROUS_API_KEY unset
    ├── MissingDependencyError (ImportError) an optional extra is needed
    ├── ClientClosedError (RuntimeError)     the client was closed (before or during the call)
    ├── BatchEmbeddingError                  some items of embed_many failed; carries what succeeded
    │   └── BatchStoppedError                the batch stopped early; also an instance of the
    │                                        stopping error's class (see stopped_batch_error)
    └── BudgetExceededError                  max_credits would be exceeded; carries what succeeded

A batch that stops because of an error that would fail every remaining input (401, 402, 403, a
closed client, a budget, a missing extra, a rate limit longer than the client waits) raises a
:class:`BatchStoppedError` that is *also* an instance of that error's class, so
``except AuthenticationError:`` around ``embed_many`` (or an adapter) catches it and ``.results``
still holds what succeeded. Every exception here survives ``pickle`` (process pools hand a worker's
exception back that way) and ``copy.copy``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aurous_embed.types import EmbeddingResult


def _restore(cls: type[AurousError], args: tuple[Any, ...], state: dict[str, Any]) -> AurousError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class AurousError(Exception):
    """Base class of every exception raised by aurous-embed.

    Attributes:
        index: for an error about one item of a batch (``embed_many``, ``embed_iter``, adapters),
            the item's position in the inputs; ``None`` otherwise.
    """

    index: int | None = None
    #: ``True`` for the error of an item that was never sent because its batch stopped (see
    #: :class:`BatchStoppedError`): nothing was charged for it.
    skipped: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls cls(*args), which keyword-only constructors cannot take:
        # rebuild without __init__ and restore every attribute instead.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class APIError(AurousError):
    """A request to the API failed (with or without an answer)."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


class APIStatusError(APIError):
    """The API answered with a non-2xx status and (usually) the documented error envelope.

    Attributes mirror the envelope: ``code`` is stable and safe to branch on; ``message`` is for
    humans; ``param`` names the offending field (or is ``None``); ``request_id`` is the value to quote
    in a support ticket (it equals the ``Aurous-Request-Id`` response header).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        doc_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.code = code
        self.type = type
        self.param = param
        self.doc_url = doc_url
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body

    def __str__(self) -> str:
        head = f"{self.status_code} {self.code or 'error'}: {self.message}"
        extras = [f"{name}={value}" for name, value in (("param", self.param),) if value]
        if self.request_id:
            extras.append(f"request_id={self.request_id}")
        return f"{head} ({', '.join(extras)})" if extras else head


class BadRequestError(APIStatusError):
    """400/422 ``invalid_request``: the request must be fixed; it is never retried."""


class UnsupportedDimensionsError(BadRequestError):
    """``dimensions`` is not in the model's supported set (``embeddings_unsupported_dimensions``)."""


class BatchInputNotSupportedError(BadRequestError):
    """The API refuses ``string[]`` input: use ``embed_many`` (N requests) or ``Text`` parts."""


class TooManyInputItemsError(BadRequestError):
    """More than 16 content parts or more than 8 images in one input."""


class InputTooLargeError(BadRequestError):
    """The input is over the model's 128K-token context window."""


class VideoUnsupportedError(BadRequestError):
    """The API stopped accepting ``video_url`` parts on 2026-05-24 (``embeddings_video_unsupported``).

    Embed a few frames as images instead (``Image`` parts), or send the video's caption as text.
    """


class WrongModelKindError(BadRequestError):
    """A chat model was sent to the embeddings endpoint (``model_wrong_kind``)."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, unknown, expired or revoked."""


class InsufficientCreditsError(APIStatusError):
    """402 ``balance_too_low``: the team's available credits do not cover the request."""


class PermissionDeniedError(APIStatusError):
    """403 ``missing_scope``: the key's scope is too narrow (embeddings need ``write``)."""


class NotFoundError(APIStatusError):
    """404/410: the resource does not exist (or belongs to another team)."""


class IdempotencyConflictError(APIStatusError):
    """409 ``idempotency_key_in_use``: same key with another body/route, or the first call still runs."""


class RateLimitError(APIStatusError):
    """429 (request or token bucket empty), or 503 ``provider_rate_limited`` (upstream throttling).

    Attributes:
        retry_after: set when the server asked for a longer wait (``Retry-After`` or the bucket's
            reset, in seconds) than the client waits at a time: the call gave up at once, and a
            batch stops there. ``None`` otherwise.
        give_up_reason: why the client stopped waiting (shown in ``str(error)``), e.g. "the
            server asked to wait 86400 s, longer than this client waits (60 s at a time)".
    """

    retry_after: float | None = None
    give_up_reason: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}; gave up: {self.give_up_reason}" if self.give_up_reason else text


class InternalServerError(APIStatusError):
    """A 5xx that is not rate limiting; retried with backoff, raised once retries are spent."""


class APIConnectionError(APIError):
    """No usable answer: connection refused or reset, protocol error, and so on.

    Attributes:
        may_have_reached_server: ``False`` only when the request certainly never left (e.g. the
            connection was refused); otherwise the server may have run it.
    """

    def __init__(
        self, message: str = "Connection error.", *, may_have_reached_server: bool = True
    ) -> None:
        super().__init__(message)
        self.may_have_reached_server = may_have_reached_server


class APITimeoutError(APIConnectionError):
    """The request timed out (``timeout=`` on the client)."""

    def __init__(
        self, message: str = "Request timed out.", *, may_have_reached_server: bool = True
    ) -> None:
        super().__init__(message, may_have_reached_server=may_have_reached_server)


class InputValidationError(AurousError, ValueError):
    """An input breaks a documented rule; raised before any request is sent.

    Attributes:
        index: position of the offending item in ``embed_many`` (``None`` for a single ``embed``).
        param: the field, as a path into the request body (e.g. ``input[3].image_url.url``).
    """

    def __init__(self, message: str, *, param: str | None = None, index: int | None = None):
        self.reason = message
        self.param = param
        self.index = index
        super().__init__(self._render())

    def __str__(self) -> str:
        return self._render()  # the batch engine may set .index after construction

    def _render(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"item {self.index}")
        if self.param:
            where.append(self.param)
        return f"{' '.join(where)}: {self.reason}" if where else self.reason

    def at_index(self, index: int) -> InputValidationError:
        """Return this error re-labelled with the position of its item in a batch."""
        return InputValidationError(self.reason, param=self.param, index=index)


class MissingAPIKeyError(AurousError, ValueError):
    """No API key: pass ``api_key=`` or set the environment variable (``AUROUS_API_KEY``)."""


class MissingDependencyError(AurousError, ImportError):
    """A feature needs an optional extra, e.g. ``pip install "aurous-embed[images]"``."""


class ClientClosedError(AurousError, RuntimeError):
    """The client was closed: before the call, or while the call was running (what was in flight
    was cut short and nothing more was sent)."""

    def __init__(self, message: str = "the client has been closed") -> None:
        super().__init__(message)


class BatchEmbeddingError(AurousError):
    """Some items of a batch failed permanently; nothing that succeeded is lost.

    Attributes:
        results: one entry per input, in input order; ``None`` where the item failed.
        errors: ``{index: exception}`` for every failed item.
    """

    def __init__(
        self, results: Sequence[EmbeddingResult | None], errors: Mapping[int, BaseException]
    ) -> None:
        self.results = results
        self.errors = dict(sorted(errors.items()))
        first = next(iter(self.errors.items()), None)
        detail = f"; first: item {first[0]}: {first[1]}" if first else ""
        super().__init__(
            f"{len(self.errors)} of {len(results)} inputs failed "
            f"({len(results) - len(self.errors)} succeeded and are in .results){detail}"
        )


class BudgetExceededError(AurousError):
    """Sending the next request could exceed ``max_credits``; nothing over budget was sent.

    Attributes:
        results: one entry per input seen so far, ``None`` where not embedded.
        credits_spent: credits actually charged by the calls that ran.
        max_credits: the budget.
    """

    def __init__(
        self,
        message: str,
        *,
        results: Sequence[EmbeddingResult | None],
        credits_spent: float,
        max_credits: float,
    ) -> None:
        super().__init__(message)
        self.results = results
        self.credits_spent = credits_spent
        self.max_credits = max_credits


class BatchStoppedError(BatchEmbeddingError):
    """A batch stopped early because of ``cause``, an error that would fail every remaining input.

    The raised object is also an instance of ``type(cause)`` (``AuthenticationError``,
    ``InsufficientCreditsError``, ``PermissionDeniedError``, ``BudgetExceededError``,
    ``ClientClosedError``, ...) and carries its attributes (``status_code``, ``code``,
    ``request_id``, ``credits_spent``, ...), so it can be caught either way.

    Attributes:
        cause: the error that stopped the batch (its ``.index`` names the item).
        results: one entry per input, ``None`` where the item failed or was never sent.
        errors: ``{index: exception}`` for every item that failed or was not sent.
    """

    cause: AurousError

    def __str__(self) -> str:
        if "cause" not in self.__dict__:  # made directly, not by a stopped batch
            return super().__str__()
        errors: Mapping[int, BaseException] = self.errors
        done = len(self.results) - len(errors)
        return (
            f"{self.cause} (the batch stopped at item {self.cause.index}: {len(errors)} of "
            f"{len(self.results)} inputs failed or were not sent; {done} succeeded and are in "
            ".results)"
        )


#: One batch flavour per error class that stops a batch, made once so pickle finds it by name.
_STOPPED_CLASSES: dict[type[AurousError], type[BatchStoppedError]] = {}


def _stopped_class(cause: type[AurousError]) -> type[BatchStoppedError]:
    cls = _STOPPED_CLASSES.get(cause)
    if cls is None:
        name = "BatchStopped" + cause.__name__
        cls = type(name, (BatchStoppedError, cause), {"__module__": __name__})
        cls.__doc__ = f"A batch stopped by {cause.__name__}: see BatchStoppedError."
        globals()[name] = _STOPPED_CLASSES[cause] = cls
    return cls


def stopped_batch_error(
    cause: AurousError,
    results: Sequence[EmbeddingResult | None],
    errors: Mapping[int, BaseException],
) -> BatchStoppedError:
    """The error a batch raises when ``cause`` stopped it: a :class:`BatchStoppedError` that is
    also an instance of ``type(cause)``, with the cause's attributes and the batch's results."""
    cls = _stopped_class(type(cause))
    error = cls.__new__(cls)
    error.__dict__.update(cause.__dict__)
    error.cause = cause
    error.results = results
    error.errors = dict(sorted(errors.items()))
    error.index = None
    error.args = (str(error),)
    return error


def skipped_error(cause: AurousError, index: int | None) -> AurousError:
    """The error of an item that was never sent because ``cause`` stopped its batch: a copy of
    ``cause`` (same class and envelope) naming the item (``None``: the batch names it), with
    ``skipped=True``."""
    error = copy.copy(cause)
    error.index = index
    error.skipped = True
    where = "" if cause.index is None else f" at item {cause.index}"
    note = f"not sent (the batch stopped{where}): "
    if isinstance(error, APIError):
        error.message = note + error.message
        error.args = (error.message,)
    elif isinstance(error, InputValidationError):
        error.reason = note + error.reason
        error.args = (error._render(),)
    else:
        error.args = (note + str(cause),)
    return error


for _cause in (
    AuthenticationError,
    PermissionDeniedError,
    InsufficientCreditsError,
    RateLimitError,
    MissingDependencyError,
    ClientClosedError,
    BudgetExceededError,
):
    _stopped_class(_cause)


def stops_batch(error: BaseException) -> bool:
    """Whether ``error`` would fail every remaining input of its batch the same way, so that
    nothing more should be sent: a bad key or scope, no balance, a closed client, a budget, a
    missing extra, or a rate limit longer than the client waits."""
    if isinstance(
        error,
        (
            AuthenticationError,
            PermissionDeniedError,
            InsufficientCreditsError,
            MissingDependencyError,
            BudgetExceededError,
            ClientClosedError,
        ),
    ):
        return True
    return isinstance(error, RateLimitError) and error.retry_after is not None


# Exact codes with their own class; everything else falls back to the status-based class.
_CODE_CLASSES: dict[str, type[APIStatusError]] = {
    "embeddings_unsupported_dimensions": UnsupportedDimensionsError,
    "embeddings_batch_not_supported": BatchInputNotSupportedError,
    "embeddings_input_too_many_items": TooManyInputItemsError,
    "embeddings_input_too_large": InputTooLargeError,
    "embeddings_video_unsupported": VideoUnsupportedError,
    "model_wrong_kind": WrongModelKindError,
    "idempotency_key_in_use": IdempotencyConflictError,
    "balance_too_low": InsufficientCreditsError,
}

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: IdempotencyConflictError,
    410: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_class_for(status: int, code: str | None, type_: str | None) -> type[APIStatusError]:
    """Pick the exception class for an error answer: the code first, then the status."""
    if code in _CODE_CLASSES and 400 <= status < 500:
        return _CODE_CLASSES[code]
    if status == 503 and type_ == "rate_limit":
        return RateLimitError  # provider_rate_limited: upstream throttling, retried like a 429
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return InternalServerError
    return APIStatusError


def error_from_response(status: int, headers: Mapping[str, str], content: bytes) -> APIStatusError:
    """Turn a non-2xx answer into its typed exception, tolerating any body."""
    body: Any = None
    envelope: Mapping[str, Any] = {}
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = content.decode("utf-8", "replace")[:500]
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        envelope = body["error"]

    def text(key: str) -> str | None:
        value = envelope.get(key)
        return value if isinstance(value, str) else None

    code, type_ = text("code"), text("type")
    message = text("message") or (body if isinstance(body, str) and body else None)
    request_id = text("request_id") or headers.get("aurous-request-id")
    cls = error_class_for(status, code, type_)
    return cls(
        message or f"HTTP {status} with no error message",
        status_code=status,
        code=code,
        type=type_,
        param=text("param"),
        request_id=request_id,
        doc_url=text("doc_url"),
        headers=headers,
        body=body,
    )
