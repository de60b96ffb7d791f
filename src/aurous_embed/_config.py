"""Names, defaults, documented limits and the project's assumptions, in one place.

Everything the API documentation states is marked [DOC]. Every gap the docs leave is settled by the
"Project decisions" table of the API contract and marked [ASSUMPTION]; README lists each one under
"Assumptions". If the live API turns out different, only the constant here changes.
"""

from __future__ import annotations

import re
from typing import Final

# --- environment and defaults -------------------------------------------------------------------
ENV_API_KEY: Final = "AUROUS_API_KEY"
ENV_BASE_URL: Final = "AUROUS_BASE_URL"
ENV_API_VERSION: Final = "AUROUS_API_VERSION"

DEFAULT_BASE_URL: Final = "https://api.aurous-labs.com/v1"  # [DOC]
# [ASSUMPTION] `GET /v1/models` lists this slug; the OpenAPI examples also show "aurous-embed-vision".
DEFAULT_MODEL: Final = "aurous-embed-vision-1.0"
MODEL_ALIASES: Final = ("aurous-embed-vision",)  # accepted by the emulator, echoed as sent
CHAT_MODEL: Final = (
    "aurous-grow-2.0-pro"  # [DOC] the chat model; embeddings answer model_wrong_kind
)
# [ASSUMPTION] the server's embedding timeout is not documented; 60 s covers the documented 1-2 s p50
# with media with a wide margin.
DEFAULT_TIMEOUT: Final = 60.0
# [ASSUMPTION] the longest timeout per attempt the client takes: a day. Larger values overflow the
# socket layer's time_t (1e10 s) and no embedding takes that long; inf and nan are refused too.
MAX_TIMEOUT: Final = 86_400.0
DEFAULT_MAX_RETRIES: Final = 4
DEFAULT_MAX_CONCURRENCY: Final = 32

# --- versions -----------------------------------------------------------------------------------
API_VERSION_PATTERN: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # [DOC]
CURRENT_API_VERSION: Final = "2026-05-15"  # [DOC] first stable pin ("v1.0")

# --- documented input limits [DOC] --------------------------------------------------------------
MAX_PARTS: Final = 16
MAX_IMAGES: Final = 8
MAX_TEXT_CHARS: Final = 1_000_000
MAX_URL_CHARS: Final = 2048
CONTEXT_WINDOW_TOKENS: Final = 128_000
SUPPORTED_DIMENSIONS: Final = (1024, 2048)  # `aurous_metadata.dimensions`; validated, not applied
MAX_USER_CHARS: Final = 256  # [DOC] the API reference's `user`: "Maximum string length: 256"
# [ASSUMPTION] the largest integer the client sends as `dimensions` (a signed 32-bit integer: any
# JSON parser reads it exactly; the API then checks it against the model's set).
MAX_DIMENSIONS_VALUE: Final = 2**31 - 1
# [DOC] cloud metadata hostnames are refused by name (the docs list examples and end with "...");
# [ASSUMPTION] the rest of this list, and that "localhost" / "*.localhost" count as loopback names
# (they name loopback without any DNS lookup). Literal IPs are refused by range; hostnames are
# never resolved by the client.
BLOCKED_URL_HOSTNAMES: Final = frozenset(
    (
        "localhost",
        "localhost.localdomain",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.aws.com",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    )
)

# [ASSUMPTION] inline `b64_json` bytes get the documented `/v1/files` limits, the conservative choice.
IMAGE_MIME_TYPES: Final = ("image/png", "image/jpeg", "image/webp")
#: File suffixes of images the client converts and sends (what `index` and the adapters look for).
IMAGE_FILE_SUFFIXES: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
MAX_IMAGE_SIDE: Final = 4096
# Client bounds on local images, not API limits: the most the client reads of one image file or
# stream (images over 10 MB are read only to be converted), the most pixels it decodes for one
# image (just under Pillow's own refusal at 178,956,970: a 13,000 x 13,000 scan passes), and how
# many pixels all the process's conversions may hold decoded at once (a 12,000 x 12,000 PNG takes
# about 580 MB decoded, so two such images are never decoded at the same time).
MAX_IMAGE_SOURCE_BYTES: Final = 64 * 1024 * 1024
MAX_DECODE_PIXELS: Final = 178_000_000
DECODE_BUDGET_PIXELS: Final = 200_000_000
# [ASSUMPTION] images of more pixels than this are converted on one process-wide thread: glibc gives
# each thread its own malloc arena and keeps what a huge decode freed, so spreading huge decodes over
# many worker threads grows the process by one huge image per thread (16-bit PNGs: ~2.4 GB for six).
BIG_IMAGE_PIXELS: Final = 16_000_000

# --- pricing [DOC] ------------------------------------------------------------------------------
TEXT_CREDITS_PER_M: Final = 18.75
VISUAL_CREDITS_PER_M: Final = 48.75
# [ASSUMPTION] the tokenizer is not documented. The emulator counts ceil(utf-8 bytes / 4), minimum 1,
# and 1,024 tokens per image; the client's local budget estimate uses the same text rule and the top
# of the documented 1,000-1,500 visual-token range, so it is an upper bound.
TEXT_BYTES_PER_TOKEN: Final = 4
EMULATOR_TOKENS_PER_IMAGE: Final = 1024
ESTIMATE_TOKENS_PER_IMAGE: Final = 1500

# --- idempotency and retries --------------------------------------------------------------------
IDEMPOTENCY_WINDOW_SECONDS: Final = 24 * 3600  # [DOC]
# [DOC] 409 idempotency_key_in_use for an in-flight key: back off 0.5 s doubling to 8 s.
CONFLICT_BACKOFF_INITIAL: Final = 0.5
CONFLICT_BACKOFF_MAX: Final = 8.0
# [ASSUMPTION] how long a call keeps waiting for its own in-flight first attempt (no documented bound).
CONFLICT_MAX_WAIT: Final = 60.0
# [DOC] 5xx: exponential backoff with jitter, 1 s -> 2 s -> 4 s -> 8 s, capped around 30 s.
SERVER_BACKOFF_INITIAL: Final = 1.0
SERVER_BACKOFF_MAX: Final = 30.0
# [ASSUMPTION] the largest answer the client reads (after decompression): the biggest documented
# answer (one embedding, a model or file list) is well under 1 MB; a server sending more is broken
# or hostile, and its body is not read further (an APIConnectionError, like a cut answer).
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
# [ASSUMPTION] the longest single wait the client honours from Retry-After / X-RateLimit-Reset.
MAX_RETRY_AFTER: Final = 60.0
# [ASSUMPTION] the least wait after a rate limit: a `Retry-After: 0` or a reset already past is not
# an invitation to resend at once (every request of the process holds back this long).
RATE_LIMIT_MIN_WAIT: Final = 1.0
# [ASSUMPTION] a rate limit is back-pressure, not a failure: waits for 429 / 503 provider_rate_limited
# do not use up max_retries; one call waits them out up to this many times and seconds in total.
RATE_LIMIT_RETRIES_PER_RETRY: Final = 10  # x max_retries (0 disables every retry)
RATE_LIMIT_MAX_WAIT: Final = 300.0

# --- emulator defaults [ASSUMPTION: embedding RPM/TPM are not documented] -----------------------
EMULATOR_RPM: Final = 600
EMULATOR_RPM_BURST: Final = 120
EMULATOR_TPM: Final = 1_000_000
EMULATOR_NATIVE_DIMENSION: Final = 2048
EMULATOR_CREDITS: Final = 1000.0

DOC_ERRORS_URL: Final = "https://docs.aurous-labs.com/errors#"
