"""Generates the blocking client `_sync.py` from the asyncio one `_async.py`: part of `make gen`.

A token-level rewrite (comments and layout survive, unlike an AST round trip): `async` and
`await` go, the asyncio names in NAMES become their blocking twins, then ruff sorts the imports
and formats the result. Whatever differs beyond that belongs in these tables, not in _sync.py.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import NamedTuple, Protocol

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path("taskscheduler") / "client"
SOURCE = CLIENT / "_async.py"
TARGET = CLIENT / "_sync.py"
COMMAND = "python -m taskscheduler.devstack.syncgen"
HEADER = f"# Generated from _async.py by `make gen` ({COMMAND}): do not edit.\n"

# Dotted names of asyncio and grpc.aio, and their blocking twins.
NAMES = {
    "AsyncClient": "Client",
    "AsyncIterable": "Iterable",
    "AsyncIterator": "Iterator",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "asyncio.sleep": "time.sleep",
    "grpc.aio.AioRpcError": "grpc.RpcError",
    "grpc.aio.insecure_channel": "grpc.insecure_channel",
    "grpc.aio.secure_channel": "grpc.secure_channel",
}
# `Awaitable[T]` is plain `T` once nothing is awaited.
UNWRAPPED = "Awaitable"
# Imported by the asyncio client only.
DROPPED_IMPORTS = frozenset({"asyncio"})
# The asyncio client's docstrings, and the blocking client's.
ASYNC_CLASS_DOC = (
    '"""The asyncio twin of Client: the same methods, awaited; `list` and `watch` are\n'
    '    async iterators. Use it as `async with AsyncClient(...) as tasks:`."""'
)
SYNC_CLASS_DOC = (
    '"""A connection to the TaskService. Every call carries the token and a deadline\n'
    "    (`deadline` seconds); UNAVAILABLE is tried again under `retries`. Failures raise\n"
    '    ClientError."""'
)
DOCSTRINGS = {
    '"""The asyncio client."""': '"""The blocking client."""',
    ASYNC_CLASS_DOC: SYNC_CLASS_DOC,
}
# Lint waivers that only asyncio code needs (flake8-async's rules).
ASYNC_NOQA = re.compile(r"#\s*noqa:\s*ASYNC\d+")


class OffsetOf(Protocol):
    """The offset in the source of a token's start (which=0) or end (which=1)."""

    def __call__(self, index: int, which: int = 0) -> int: ...


class Edit(NamedTuple):
    start: int
    end: int
    text: str


def generate(source: str) -> str:
    """The blocking client's source, from the asyncio client's."""
    return formatted(HEADER + rewritten(source))


def rewritten(source: str) -> str:
    offsets = line_offsets(source)
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))

    def at(index: int, which: int = 0) -> int:
        token = tokens[index]
        row, column = token.end if which else token.start
        return offsets[row - 1] + column

    edits: list[Edit] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == tokenize.NAME and token.string in ("async", "await"):
            edits.append(Edit(at(index), at(index + 1), ""))
        elif token.type == tokenize.NAME and token.string == "import" and dropped(tokens, index):
            line_start = offsets[token.start[0] - 1]
            edits.append(Edit(line_start, offsets[token.start[0]], ""))
        elif token.type == tokenize.NAME and token.string == UNWRAPPED:
            edits.extend(unwrap(tokens, index, at))
        elif token.type == tokenize.NAME and not after_dot(tokens, index):
            last = dotted_end(tokens, index)
            name = "".join(t.string for t in tokens[index : last + 1])
            if name in NAMES:
                edits.append(Edit(at(index), at(last, 1), NAMES[name]))
                index = last
        elif token.type == tokenize.COMMENT and ASYNC_NOQA.match(token.string):
            edits.append(Edit(at(index - 1, 1), at(index, 1), ""))
        elif token.type == tokenize.STRING and token.string in DOCSTRINGS:
            edits.append(Edit(at(index), at(index, 1), DOCSTRINGS[token.string]))
        index += 1
    for edit in sorted(edits, reverse=True):
        source = source[: edit.start] + edit.text + source[edit.end :]
    return source


def line_offsets(source: str) -> list[int]:
    """The offset in `source` of each line's start, and of the end."""
    offsets = [0]
    for line in source.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets


def dropped(tokens: list[tokenize.TokenInfo], index: int) -> bool:
    """`import asyncio` alone on its line."""
    module, end = tokens[index + 1], tokens[index + 2]
    return module.string in DROPPED_IMPORTS and end.type == tokenize.NEWLINE


def after_dot(tokens: list[tokenize.TokenInfo], index: int) -> bool:
    return index > 0 and tokens[index - 1].string == "."


def dotted_end(tokens: list[tokenize.TokenInfo], index: int) -> int:
    """The index of the last name of the dotted name starting at `index`."""
    while (
        index + 2 < len(tokens)
        and tokens[index + 1].string == "."
        and tokens[index + 2].type == tokenize.NAME
    ):
        index += 2
    return index


def unwrap(tokens: list[tokenize.TokenInfo], index: int, at: OffsetOf) -> list[Edit]:
    """`Awaitable[T]` -> `T`; `Awaitable, ` (an import) -> nothing."""
    following = tokens[index + 1].string
    if following == ",":
        return [Edit(at(index), at(index + 2), "")]
    if following != "[":
        raise ValueError(f"line {tokens[index].start[0]}: {UNWRAPPED} neither imported nor [T]")
    depth, close = 0, index + 1
    for close in range(index + 1, len(tokens)):
        depth += {"[": 1, "]": -1}.get(tokens[close].string, 0)
        if depth == 0:
            break
    return [Edit(at(index), at(index + 2), ""), Edit(at(close), at(close, 1), "")]


def formatted(source: str) -> str:
    """Imports sorted (the asyncio ones gone), `yield from` where it fits, and laid out as
    `ruff format` lays out the tree."""
    name = str(TARGET)
    # UP028's fix (`yield from`) is marked unsafe for generators that are sent values or
    # closed early; these, written as async generators, are neither.
    fixes = ["check", "--fix", "--unsafe-fixes", "--select", "I,F401,UP028", "--exit-zero"]
    source = ruff([*fixes, "--quiet"], name, source)
    return ruff(["format", "--quiet"], name, source)


def ruff(args: list[str], name: str, source: str) -> str:
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", name, "-"]
    done = subprocess.run(command, input=source, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr}")
    return done.stdout


def main() -> None:
    (ROOT / TARGET).write_text(generate((ROOT / SOURCE).read_text()))
    print(TARGET)


if __name__ == "__main__":
    main()
