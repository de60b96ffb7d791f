"""The two clients cannot drift: ``_client.py`` is what the generator makes of ``_async_client.py``,
and both expose the same methods, parameters, overloads and docstrings.

The comparison here does not use the generator: it reads both classes as they are and allows
only the differences of flavour (``async``/``await``, ``Async*`` types, the other client's name)
and the few the async client alone has, listed in ``ASYNC_ONLY``.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aurous_embed import AsyncAurousClient, AurousClient

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "aurous_embed"

#: Sync name -> its async twin, where the names differ.
RENAMED = {"to_async": "to_sync", "__enter__": "__aenter__", "__exit__": "__aexit__"}
#: (method, parameter) -> the async annotation, where the async client takes more.
ASYNC_ONLY: dict[tuple[str, str], str | None] = {
    ("__init__", "http_backend"): None,  # the async client alone has this parameter
    ("embed_iter", "inputs"): "Iterable[EmbedInput] | AsyncIterable[EmbedInput]",
    ("embed_as_completed", "inputs"): "Iterable[EmbedInput] | AsyncIterable[EmbedInput]",
}
#: Methods whose async twin is not a coroutine function: the streams return async iterators.
NOT_AWAITED = {"__init__", "to_async", "embed_iter", "embed_as_completed"}


def flavourless(text: str) -> str:
    """``text`` with the words that say which flavour it is written in made neutral."""
    text = re.sub(r"\b(?:Async)?AurousClient\b", "<Client>", text)
    text = re.sub(r"\bto_(?:a)?sync\b", "to_<twin>", text)
    text = re.sub(r"\bAsync(Iterator|Iterable|Generator|Client)\b", r"\1", text)
    text = re.sub(r"\b(?:async|await)\s+", "", text)
    return re.sub(r"\b(?:As|S)ynchronous\b", "<S>ynchronous", text)


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")} | {"__init__"}


def twin_name(name: str) -> str:
    return RENAMED.get(name, name)


def test_the_generated_client_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"run `python scripts/unasync.py`:\n{done.stdout}{done.stderr}"
    header = (PACKAGE / "_client.py").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# GENERATED FILE, DO NOT EDIT")


def test_both_clients_have_the_same_public_names() -> None:
    sync = {twin_name(name) for name in public_names(AurousClient)}
    assert sync == public_names(AsyncAurousClient)
    assert hasattr(AsyncAurousClient, "__aexit__") and hasattr(AurousClient, "__exit__")


@pytest.mark.parametrize("name", sorted(public_names(AurousClient) | set(RENAMED)))
def test_a_method_has_the_same_signature_and_docstring_in_both(name: str) -> None:
    sync = inspect.getattr_static(AurousClient, name)
    twin = inspect.getattr_static(AsyncAurousClient, twin_name(name))
    assert type(sync) is type(twin)
    awaited = name not in NOT_AWAITED
    if isinstance(sync, property):
        sync, twin, awaited = sync.fget, twin.fget, False
    assert callable(sync) and callable(twin)
    assert flavourless(inspect.getdoc(sync) or "") == flavourless(inspect.getdoc(twin) or "")
    assert not inspect.iscoroutinefunction(sync)
    assert inspect.iscoroutinefunction(twin) is awaited

    sync_sig, twin_sig = inspect.signature(sync), inspect.signature(twin)
    twin_params = dict(twin_sig.parameters)
    for (method, param), annotation in ASYNC_ONLY.items():
        if method == name and annotation is None:
            del twin_params[param]
    assert list(sync_sig.parameters) == list(twin_params)
    for param, s in sync_sig.parameters.items():
        t = twin_params[param]
        assert (s.kind, s.default) == (t.kind, t.default), param
        extra = ASYNC_ONLY.get((name, param))
        if extra is not None:
            assert t.annotation == extra
            assert s.annotation == extra.split(" | ")[0]
        else:
            assert flavourless(str(s.annotation)) == flavourless(str(t.annotation)), param
    assert flavourless(str(sync_sig.return_annotation)) == flavourless(
        str(twin_sig.return_annotation)
    )


def overloads(module: str, cls: str) -> dict[str, list[str]]:
    """Each method's ``@overload`` signatures, as source text, from the module's syntax tree."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    (body,) = (n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    found: dict[str, list[str]] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list
        ):
            returns: Any = node.returns
            text = f"({ast.unparse(node.args)}) -> {ast.unparse(returns)}"
            found.setdefault(node.name, []).append(text)
    return found


def test_the_overloads_are_the_same_in_both() -> None:
    sync = overloads("_client.py", "AurousClient")
    twin = overloads("_async_client.py", "AsyncAurousClient")
    assert set(sync) == set(twin) == {"embed_many", "embed_iter"}
    inputs = ASYNC_ONLY[("embed_iter", "inputs")]
    assert inputs is not None
    for name, signatures in sync.items():
        assert len(signatures) == len(twin[name])
        for s, t in zip(signatures, twin[name], strict=True):
            assert flavourless(s) == flavourless(t.replace(inputs, inputs.split(" | ")[0]))
    # The async stream's items are typed as the sync one's are.
    assert any("AsyncIterator[EmbeddingResult | AurousError]" in t for t in twin["embed_iter"])
