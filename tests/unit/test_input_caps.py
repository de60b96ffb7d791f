"""Every documented input cap, exactly at the cap and one past it, and every input form's part.

The caps (``_config.py``, from the API documentation): 1,000,000 characters per text, 2,048
characters per URL, 16 content parts and 8 images per input. At the cap is accepted; one past it is
refused before anything is sent, with ``param`` naming the field.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import Image, ImageURL, InputValidationError, Text, VideoURL
from aurous_embed._config import MAX_IMAGES, MAX_PARTS, MAX_TEXT_CHARS, MAX_URL_CHARS
from aurous_embed._part_checks import BATCH_HINT, check_batch, check_part, check_text, check_url
from aurous_embed._part_types import count_images, has_local_image
from aurous_embed._parts import (
    document_parts,
    image_from_uri,
    images_from_uris,
    input_to_wire,
    normalize_input,
    normalize_inputs,
    part_to_wire,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
URL = "https://example.com/a.png"


def refused(call: Any, *args: Any, **kwargs: Any) -> InputValidationError:
    with pytest.raises(InputValidationError) as info:
        call(*args, **kwargs)
    return info.value


def url_of_length(n: int) -> str:
    head = "https://example.com/"
    return head + "a" * (n - len(head))


# --- the caps, at and past -------------------------------------------------------------------


def test_the_documented_caps() -> None:
    assert (MAX_TEXT_CHARS, MAX_URL_CHARS, MAX_PARTS, MAX_IMAGES) == (1_000_000, 2048, 16, 8)


def test_text_of_exactly_a_million_characters_is_accepted_and_one_more_refused() -> None:
    at_cap = "a" * MAX_TEXT_CHARS
    assert normalize_input(at_cap) is at_cap
    assert normalize_input([Text(at_cap)]) == (Text(at_cap),)
    error = refused(normalize_input, at_cap + "a")
    assert error.param == "input"
    assert str(error) == (
        "input: text has 1,000,001 characters; the cap is 1,000,000 per text "
        "(split it into chunks and embed each one)"
    )
    assert refused(normalize_input, [Text(at_cap + "a")]).param == "input[0].text"


def test_a_url_of_exactly_2048_characters_is_accepted_and_one_more_refused() -> None:
    at_cap = url_of_length(MAX_URL_CHARS)
    assert len(at_cap) == 2048
    assert check_url(at_cap, param="u") == at_cap
    assert normalize_input([ImageURL(at_cap)]) == (ImageURL(at_cap),)
    error = refused(normalize_input, [ImageURL(at_cap + "a")])
    assert error.param == "input[0].image_url.url"
    assert "url has 2,049 characters; the cap is 2,048" in str(error)
    assert refused(normalize_input, [VideoURL(at_cap + "a")]).param == "input[0].video_url.url"


def test_sixteen_parts_are_accepted_and_seventeen_refused() -> None:
    parts = [Text(f"t{i}") for i in range(MAX_PARTS)]
    assert len(normalize_input(parts)) == 16
    error = refused(normalize_input, [*parts, Text("one more")])
    assert error.param == "input"
    assert str(error) == "input: input has 17 content parts; the cap is 16 total parts per request"


def test_eight_images_are_accepted_and_nine_refused() -> None:
    images: list[object] = [Image(PNG) for _ in range(4)] + [ImageURL(URL)] * 4
    assert count_images(normalize_input(images)) == 8
    error = refused(normalize_input, [*images, Image(PNG)])
    assert error.param == "input"
    assert str(error) == "input: input has 9 image parts; the cap is 8 images per request"
    assert "9 image parts" in str(refused(normalize_input, [*images, ImageURL(URL)]))
    # Video parts are not images: 8 images and a video are within the caps.
    assert len(normalize_input([*images, VideoURL("https://example.com/v.mp4")])) == 9


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"bytes", "text must be a str, not bytes"),
        ("", "text is empty"),
        ("ab\x00c", "text contains a NUL character at position 2"),
        ("ab\ud800", "text is not valid UTF-8 (a lone surrogate at position 2)"),
    ],
)
def test_bad_text(value: object, message: str) -> None:
    error = refused(check_text, value, param="p")
    assert error.reason == message
    assert error.param == "p"


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (7, "url must be a str, not int"),
        ("", "url is empty"),
        ("https://[::1", "url is malformed: Invalid IPv6 URL"),
        ("http://example.com/a.png", "url scheme must be https, not 'http'"),
        (
            "file:///tmp/a.png",
            "url scheme must be https, not 'file' (local files and data: URIs go inline: use "
            "Image(...) or image_from_uri(...))",
        ),
        (
            "data:image/png;base64,AAAA",
            "url scheme must be https, not 'data' (local files and data: URIs go inline: use "
            "Image(...) or image_from_uri(...))",
        ),
        (
            "example.com/a.png",
            "url scheme must be https, not 'missing' (local files and data: URIs go inline: use "
            "Image(...) or image_from_uri(...))",
        ),
        ("ftp://example.com/a.png", "url scheme must be https, not 'ftp'"),
        ("https:///a.png", "url has no host"),
        ("https://example.com:99999/a.png", "url port '99999' is not a port number"),
        ("https://localhost/a.png", "url host 'localhost' is"),
        ("https://169.254.169.254/latest", "url host '169.254.169.254' is"),
    ],
)
def test_bad_urls(url: object, message: str) -> None:
    error = refused(check_url, url, param="u")
    assert error.reason.startswith(message)
    assert error.param == "u"


def test_https_in_any_case_and_a_port_are_fine() -> None:
    assert (
        check_url("HTTPS://Example.com:8443/a.png", param="u") == "HTTPS://Example.com:8443/a.png"
    )


# --- parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [0, -1, True, 1.5, "2"])
def test_max_side_must_be_a_positive_int(side: object) -> None:
    error = refused(check_part, Image(PNG, max_side=side), param="input[2]")  # type: ignore[arg-type]
    assert error.param == "input[2].max_side"
    assert error.reason == f"max_side must be a positive int, not {side!r}"


def test_max_side_of_one_is_fine() -> None:
    check_part(Image(PNG, max_side=1), param="input[0]")


def test_each_part_names_its_field() -> None:
    assert refused(check_part, Text(""), param="input[1]").param == "input[1].text"
    assert refused(check_part, ImageURL(""), param="input[1]").param == "input[1].image_url.url"
    assert refused(check_part, VideoURL(""), param="input[1]").param == "input[1].video_url.url"
    error = refused(check_part, Image(b"not an image"), param="input[1]")
    assert error.param == "input[1].image_url.b64_json"


def test_api_shaped_dicts_become_parts() -> None:
    encoded = base64.b64encode(PNG).decode()
    value = normalize_input(
        [
            {"type": "text", "text": "caption"},
            {"type": "image_url", "image_url": {"url": URL}},
            {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
            {"type": "image_url", "image_url": {"b64_json": encoded}},
        ]
    )
    assert value[:3] == (Text("caption"), ImageURL(URL), VideoURL("https://example.com/v.mp4"))
    image = value[3]
    assert isinstance(image, Image)
    assert image.source == PNG
    assert normalize_input({"type": "text", "text": "alone"}) == (Text("alone"),)


@pytest.mark.parametrize(
    ("part", "param", "message"),
    [
        ({"type": 3}, "input[0].type", "part type must be a str such as 'text', not int"),
        ({"text": "no type"}, "input[0].type", "part type must be a str"),
        ({"type": "audio"}, "input[0].type", "unknown part type 'audio'; expected"),
        (
            {"type": "image_url", "image_url": URL},
            "input[0].image_url",
            "image_url must be an object such as {'url': 'https://...'}, not str",
        ),
        ({"type": "video_url", "video_url": None}, "input[0].video_url", "video_url must be"),
        (
            {"type": "image_url", "image_url": {"url": URL, "b64_json": "AAAA"}},
            "input[0].image_url",
            "give exactly one of url or b64_json",
        ),
        (
            {"type": "image_url", "image_url": {"b64_json": "not base64!"}},
            "input[0].image_url.b64_json",
            "b64_json is not valid base64",
        ),
        (
            {"type": "image_url", "image_url": {"b64_json": "AAAA\n"}},  # strict: no stray bytes
            "input[0].image_url.b64_json",
            "b64_json is not valid base64",
        ),
        (
            {"type": "image_url", "image_url": {"b64_json": 12}},
            "input[0].image_url.b64_json",
            "b64_json is not valid base64",
        ),
        (
            {"type": "image_url", "image_url": {"b64_json": "AAA"}},  # bad padding
            "input[0].image_url.b64_json",
            "b64_json is not valid base64",
        ),
    ],
)
def test_bad_api_shaped_dicts(part: dict[str, Any], param: str, message: str) -> None:
    for value in (part, [part]):
        error = refused(normalize_input, value)
        assert error.param == param
        assert error.reason.startswith(message)


def test_every_image_form_is_an_image_part(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    forms: list[object] = [
        PNG,
        bytearray(PNG),
        memoryview(PNG),
        path,
        io.BytesIO(PNG),
        np.zeros((2, 2, 3), dtype=np.uint8),
        pil.new("RGB", (2, 2)),
    ]
    for form in forms:
        alone = normalize_input(form)  # type: ignore[arg-type]
        assert len(alone) == 1 and isinstance(alone[0], Image)
        mixed = normalize_input(["caption", form])
        assert mixed[0] == Text("caption")
        assert isinstance(mixed[1], Image)
        assert has_local_image(mixed)


@pytest.mark.parametrize(
    ("value", "param", "message"),
    [
        (None, "input", "input is None"),
        ([], "input", "input is an empty list"),
        (["a", "b"], "input", BATCH_HINT),
        (("a",), "input", BATCH_HINT),
        ([Text("a"), ["nested"]], "input[1]", "nested lists are not parts"),
        ([Text("a"), 3.5], "input[1]", "a part must be Text, Image, ImageURL, VideoURL"),
        (3.5, "input", "a part must be Text, Image, ImageURL, VideoURL, a str or an image, not "),
    ],
)
def test_what_is_not_an_input(value: object, param: str, message: str) -> None:
    error = refused(normalize_input, value)
    assert error.param == param
    assert error.reason.startswith(message)


def test_parts_are_kept_and_strings_in_a_list_are_text() -> None:
    parts = (Text("a"), ImageURL(URL), VideoURL("https://example.com/v.mp4"), Image(PNG))
    assert normalize_input(list(parts)) == parts
    assert normalize_input(parts) == parts
    assert normalize_input(["a", ImageURL(URL)]) == (Text("a"), ImageURL(URL))
    assert normalize_input(ImageURL(URL)) == (ImageURL(URL),)


def test_a_one_pass_stream_is_read_once_and_kept_as_bytes() -> None:
    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(PNG)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: Any) -> int:
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    (part,) = normalize_input(Image(Stream(), fit=False, max_side=64))
    assert isinstance(part, Image)
    assert part.source == PNG
    assert (part.fit, part.max_side) == (False, 64)


# --- batches ---------------------------------------------------------------------------------


def test_check_batch() -> None:
    assert "not a dict" in refused(check_batch, {"type": "text", "text": "a"}).reason
    for bad in ("abc", b"abc", bytearray(b"abc"), 42):
        error = refused(check_batch, bad, "embed_many")
        assert error.reason == (
            f"embed_many takes a list of inputs, not a single {type(bad).__name__}; "
            "for one item pass a list of one"
        )
        assert error.param == "inputs"
    check_batch(["a"])
    check_batch(iter(["a"]))

    async def stream() -> AsyncIterator[str]:
        yield "a"

    check_batch(stream())


def test_a_batch_error_names_the_item() -> None:
    assert normalize_inputs(["a", [Text("b")]]) == ["a", (Text("b"),)]
    error = refused(normalize_inputs, ["a", "", "c"])
    assert error.index == 1
    assert str(error) == "item 1 input: text is empty"


# --- the wire ----------------------------------------------------------------------------------


def test_parts_on_the_wire() -> None:
    assert input_to_wire("plain") == "plain"
    assert input_to_wire((Text("a"), ImageURL(URL), VideoURL("https://example.com/v.mp4"))) == [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": URL}},
        {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
    ]
    assert part_to_wire(Image(PNG), param="input[0]") == {
        "type": "image_url",
        "image_url": {"b64_json": base64.b64encode(PNG).decode()},
    }
    assert count_images("plain") == 0
    assert count_images((Text("a"), Image(PNG), ImageURL(URL), VideoURL(URL))) == 2
    assert not has_local_image("plain")
    assert not has_local_image((Text("a"), ImageURL(URL)))


# --- URIs ------------------------------------------------------------------------------------


def test_image_uris(tmp_path: Path) -> None:
    assert image_from_uri(URL) == ImageURL(URL)
    assert image_from_uri("HTTPS://example.com/a.png") == ImageURL("HTTPS://example.com/a.png")
    from_path = image_from_uri(tmp_path / "a.png")
    assert isinstance(from_path, Image) and from_path.source == tmp_path / "a.png"
    from_file = image_from_uri("file:///tmp/a%20b.png")
    assert isinstance(from_file, Image) and from_file.source == Path("/tmp/a b.png")
    local = image_from_uri("file://localhost/tmp/a.png")
    assert isinstance(local, Image) and local.source == Path("/tmp/a.png")
    plain = image_from_uri("photos/a.png")
    assert isinstance(plain, Image) and plain.source == Path("photos/a.png")
    drive = image_from_uri("C:/photos/a.png")
    assert isinstance(drive, Image) and drive.source == Path("C:/photos/a.png")
    data = image_from_uri("data:image/png;base64," + base64.b64encode(PNG).decode())
    assert isinstance(data, Image) and data.source == PNG
    raw = image_from_uri("data:image/png,%89PNG")
    assert isinstance(raw, Image) and raw.source == b"\x89PNG"
    untyped = image_from_uri("data:,abc")
    assert isinstance(untyped, Image) and untyped.source == b"abc"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (3, "an image URI must be a str, not int"),
        ("", "the image URI is empty"),
        ("file://server/share/a.png", "file URI on a remote host is not readable"),
        ("http://example.com/a.png", "plain http:// image URLs are refused by the API"),
        ("ftp://example.com/a.png", "unsupported image URI scheme 'ftp'"),
        ("data:image/png;base64", "malformed data: URI (no comma)"),
        ("data:text/plain,abc", "data: URI holds text/plain, not an image"),
        ("data:image/png;base64,not base64!", "data: URI payload is not valid base64"),
        ("https://localhost/a.png", "url host 'localhost'"),
    ],
)
def test_bad_image_uris(uri: object, message: str) -> None:
    assert refused(image_from_uri, uri).reason.startswith(message)


def test_images_from_uris() -> None:
    assert "not a single str" in refused(images_from_uris, URL).reason
    parts = images_from_uris([URL, Image(PNG), ImageURL(URL), PNG])
    assert parts[:3] == [ImageURL(URL), parts[1], ImageURL(URL)]
    assert isinstance(parts[3], Image) and parts[3].source == PNG
    error = refused(images_from_uris, [URL, "http://example.com/a.png"])
    assert error.index == 1
    error = refused(images_from_uris, [URL, URL, 3.5])
    assert error.index == 2
    assert error.param == "uris"


# --- multimodal documents for the adapters -------------------------------------------------------


def test_document_parts_reads_strs_in_a_list_as_text(tmp_path: Path) -> None:
    assert document_parts(["title", Image(PNG), "body"])[0::2] == [Text("title"), Text("body")]
    assert document_parts(("a",)) == [Text("a")]
    assert document_parts("just text") == "just text"
    image = Image(PNG)
    assert document_parts(image) is image


@pytest.mark.parametrize("name", ["photo.png", "PHOTO.JPG", "scan.tiff"])
def test_a_str_naming_an_image_file_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(PNG)
    for value in (name, [name]):
        with pytest.warns(UserWarning, match="names an image file but is embedded as text"):
            document_parts(value)


def test_other_strs_do_not_warn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("x")
    Path("photo.png").mkdir()  # a directory, not a file
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for text in ("notes.txt", "missing.png", "photo.png", "two\nlines.png"):
            document_parts([text])
            document_parts(text)


# --- edges found by mutation testing ---------------------------------------------------------------


def test_the_batch_hint_says_what_to_do() -> None:
    reason = refused(normalize_input, ["a", "b"]).reason
    assert reason.startswith("a list of plain strings is N separate inputs")
    assert "embed_many([...])" in reason and "Text(...)" in reason


def test_a_nested_tuple_is_not_a_part() -> None:
    error = refused(normalize_input, [Text("a"), ("nested",)])
    assert error.param == "input[1]"
    assert error.reason.startswith("nested lists are not parts")


def test_base64_with_characters_outside_ascii_is_refused() -> None:
    error = refused(normalize_input, {"type": "image_url", "image_url": {"b64_json": "AAé="}})
    assert error.reason == "b64_json is not valid base64"
    error = refused(image_from_uri, "data:image/png;base64,AAé=")
    assert error.reason == "data: URI payload is not valid base64"


def test_check_batch_names_embed_many_by_default() -> None:
    assert refused(check_batch, "abc").reason.startswith("embed_many takes a list of inputs")
    assert refused(check_batch, "abc", "aembed_many").reason.startswith("aembed_many takes")


def test_an_https_image_uri_is_checked_as_a_url() -> None:
    error = refused(image_from_uri, "https://localhost/a.png")
    assert error.param == "url"


def test_data_uri_media_types() -> None:
    untyped = image_from_uri("data:;base64," + base64.b64encode(PNG).decode())
    assert isinstance(untyped, Image) and untyped.source == PNG
    error = refused(image_from_uri, "data:text/plain;charset=utf-8,abc")
    assert error.reason == "data: URI holds text/plain, not an image"


def test_paths_in_images_from_uris_are_taken_as_given() -> None:
    assert (
        f"not a single {type(Path()).__name__}" in refused(images_from_uris, Path("a.png")).reason
    )
    # A path is read when the image is embedded, like a path given as a str.
    (part,) = images_from_uris([Path("missing.png")])
    assert isinstance(part, Image) and part.source == Path("missing.png")


def test_a_multi_line_text_never_warns_even_if_such_a_file_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("two\nlines.png").write_bytes(PNG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document_parts(["two\nlines.png"])


def test_the_image_path_warning_points_at_the_callers_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("photo.png").write_bytes(PNG)

    def adapter_method(parts: Any) -> Any:  # what an adapter's embed method does
        return document_parts(parts)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        line = _line_after()
        adapter_method(["photo.png"])
    assert [str(w.message) for w in record] == [
        "'photo.png' names an image file but is embedded as text; wrap it as "
        "Image('photo.png') to embed the picture"
    ]
    assert record[0].filename == __file__
    assert record[0].lineno == line


def _line_after() -> int:
    """The number of the line after the caller's."""
    import inspect

    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1
