"""Reading files a user brings (scenarios, edge lists, dataset pickles) as hostile input.

A scenario or a dataset may come from anywhere: a mirror, a colleague, a generated sweep.
Each reader here bounds what a file can make the program do before it answers: a size
limit, UTF-8 text only, YAML whose aliases cannot multiply it and whose nesting cannot
exhaust the stack, and pickles that can build only the containers and arrays of the
official CIFAR format, never call anything else. Every refusal is a ``ValueError`` of one
line that names the file and the figure.

>>> parse_yaml("a: &x [1, 2]\\nb: *x")
{'a': [1, 2], 'b': [1, 2]}
>>> parse_yaml("[" * 200 + "]" * 200)
Traceback (most recent call last):
...
ValueError: <input>: nested more than 100 levels deep (found 101)
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml

MAX_TEXT_BYTES = 4 << 20  # a scenario or an edge list; the largest bundled one is 3 kB
MAX_YAML_NODES = 200_000  # values once aliases are expanded; a scenario has about 200
MAX_YAML_DEPTH = 100  # levels of nesting; a scenario has 5


def user_path(path: Path, info: pydantic.ValidationInfo) -> Path:
    """A path a scenario names, ``~`` expanded. A relative one is looked for beside the
    scenario file first (``base`` in the validation context), so a scenario and the traces it
    names travel together, then in the working directory (a path typed with ``--set``)."""
    path = Path(path).expanduser()
    base = (info.context or {}).get("base")
    if base is not None and not path.is_absolute() and (Path(base) / path).exists():
        return Path(base) / path
    return path


UserPath = Annotated[Path, pydantic.AfterValidator(user_path)]


def read_bytes(path: str | Path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of ``path``, refused in one line when it is larger than ``limit`` bytes or
    not a regular file (no more than ``limit`` + 1 bytes are ever read: /dev/zero ends)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size  # read no more than the file holds
            data = f.read(min(size, limit) + 1 if size else limit + 1)
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a {what}") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if len(data) > limit:
        raise ValueError(
            f"{path}: the {what} is larger than {limit:,} bytes, the limit for a {what}"
        )
    return data


def read_text(path: str | Path, what: str = "file", limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark allowed), refused in one line when it is
    larger than ``limit`` bytes, not a regular file, or not UTF-8 (another encoding, binary).
    """
    path = Path(path)
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        binary = b"\x00" in data[:4096]
        kind = "binary, not text" if binary else "not UTF-8 text"
        raise ValueError(
            f"{path}: the {what} is {kind} (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit while composing (its composer recurses) and a
    count of the values the document stands for once every alias is expanded."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source, self.depth = source, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise ValueError(
                f"{self.source}: nested more than {MAX_YAML_DEPTH} levels deep (found {self.depth})"
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(root: yaml.Node, source: str) -> int:
    """How many values ``root`` becomes once aliases are copied out, counted without copying:
    a node met again (an alias) counts its whole size again, computed once."""
    sizes: dict[int, int] = {}
    # iterative post-order: the composer already bounded the depth, but not the width
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done or not children:
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise ValueError(
                    f"{source}: expands to more than {MAX_YAML_NODES:,} values (aliases "
                    "repeated inside aliases); write the settings out"
                )
            sizes[id(node)] = total
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def parse_yaml(text: str, source: str = "<input>") -> Any:
    """``yaml.safe_load`` with bounds: at most ``MAX_YAML_DEPTH`` levels of nesting and
    ``MAX_YAML_NODES`` values after alias expansion, each refused with a ValueError naming
    ``source``. Syntax errors stay ``yaml.YAMLError``."""
    loader = _BoundedLoader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "scenario file") -> Any:
    """A YAML file a user brings: :func:`read_text`'s bounds, then :func:`parse_yaml`'s."""
    return parse_yaml(read_text(path, what), str(path))


MAX_JSON_BYTES = 1 << 30  # a run's summary.json: about 2 kB an agent


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """A run directory's JSON (summary, status, sweep): UTF-8, at most 1 GiB, and a ValueError
    of one line where it is not JSON or nests deeper than the parser's stack."""
    text = read_text(path, what, MAX_JSON_BYTES)
    try:
        return json.loads(text)
    except (RecursionError, MemoryError):  # the decoder recurses per level of nesting
        raise ValueError(f"{path}: the {what} nests too deeply to be one of ours") from None
    except ValueError as e:
        raise ValueError(f"{path}: not a valid {what} ({e})") from None


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    reconstruct, frombuffer = multiarray._reconstruct, numeric._frombuffer
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core", "numpy._core"):  # written by numpy 1.x or 2.x
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _ArraysOnly(pickle.Unpickler):
    """Builds dicts, lists, tuples, bytes, strings, numbers and numpy arrays; any other
    global a pickle names (a function to call, a class to make) is refused."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source, self.allowed = source, _numpy_globals()
        self.allowed[("_codecs", "encode")] = _codecs_encode

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise ValueError(
                f"{self.source}: the pickle asks for {module}.{name}, which the dataset's "
                "format never holds; refused (a pickle can run code when loaded)"
            )
        return found


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Python 3's protocol-2 pickles write bytes as ``_codecs.encode(str, 'latin1')``."""
    if encoding not in ("latin1", "latin-1"):
        raise ValueError(f"encoding {encoding!r} is not one a pickle of bytes uses")
    return text.encode("latin-1")


def load_arrays_pickle(path: str | Path, what: str) -> Any:
    """Unpickle ``path`` admitting only containers, bytes, strings, numbers and numpy arrays
    (Python 2 strings read as bytes, as the official CIFAR batches need); anything else,
    and any file that is not such a pickle, is a ValueError naming ``what`` and the file."""
    source = f"{what}: '{path}'"
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; its errors are worded apart)
    except OSError as e:
        raise ValueError(f"{source} cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        with f:
            return _ArraysOnly(f, source).load()
    except ValueError as e:
        if str(e).startswith(source):
            raise
        raise ValueError(f"{source} is not a readable pickle ({e})") from None
    except (MemoryError, RecursionError):
        raise ValueError(f"{source} is too large or too deeply nested to read") from None
    except Exception as e:  # a corrupt or truncated file: any of pickle's many errors
        raise ValueError(f"{source} is not a python pickle ({type(e).__name__})") from None
