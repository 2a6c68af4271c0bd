"""The package's boundaries: no import circles, the format layer without torch, the runtime
without training code or the bench, and the C library's ABI read from tzip.h and checked at load."""

from __future__ import annotations

import ast
import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from tzip.engine import library

PACKAGE = Path(__file__).resolve().parent.parent / "tzip"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module of `modules` that `path` imports at run time, at any depth of the file (a
    function's lazy import counts) but outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in modules or m.split(".")[0] in ("bench", "corpora")}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, modules) - {name} for name, path in files.items()}


def test_no_import_circles():
    g = graph()
    packages = {m for m in g if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    done: set[str] = set()

    def walk(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        for nxt in sorted(g.get(node, ())):
            # importing a.b runs a/__init__.py first; the package's own init is not an edge back
            if not (nxt in packages and node.startswith(nxt + ".")):
                walk(nxt, [*stack, node])
        done.add(node)

    for m in sorted(g):
        walk(m, [])


def test_the_runtime_imports_neither_training_code_nor_bench_nor_corpora():
    for name, deps in graph().items():
        assert not any(d.split(".")[0] in ("bench", "corpora") for d in deps), name
        if not name.startswith("tzip.train"):
            assert not any(d.startswith("tzip.train") for d in deps), (name, deps)


def test_the_format_layer_imports_no_torch_and_no_engine():
    code = ("import sys, tzip.format.container, tzip.format.detect, tzip.format.methods, tzip.format.transcode; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('tzip.train', 'tzip.engine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_header_declares_what_python_fills():
    hdr = library.header()
    assert hdr.version >= 1
    cfg = hdr.enums["tzip_cfg"]
    assert sorted(cfg.values()) == list(range(cfg["TZIP_CFG_COUNT"] + 1))
    turn = hdr.structs["tzip_decode_turn"]
    assert ctypes.sizeof(turn) == 8 * len(turn._fields_)  # pointers and int64s only
    assert hdr.functions["tzip_step"][0] is ctypes.c_int


@pytest.mark.skipif(not library.available(), reason="the C library is not built")
def test_a_library_built_from_another_header_is_refused():
    library.check_abi(library.library(), library.header())  # the real one passes

    class Stale:
        """A library that reports another ABI version and a decode_turn of another size."""

        def tzip_abi_version(self) -> int:
            return library.header().version + 1

        def tzip_abi_sizeof(self, item: int) -> int:
            return 8 if item == library.header().enums["tzip_abi_item"]["TZIP_ABI_SIZEOF_DECODE_TURN"] else \
                library.library().tzip_abi_sizeof(item)

    with pytest.raises(library.AbiMismatch, match=r"ABI version is \d+ in the library.*tzip_decode_turn is 8 bytes"):
        library.check_abi(Stale(), library.header())


def test_a_header_change_without_a_rebuild_is_refused(tmp_path):
    """A prototype the library lacks is an AbiMismatch at load, not a crash at the first call."""
    hdr = library.header()
    text = library.HEADER.read_text() + "\nTZIP_API int tzip_not_built(int64_t n);\n"
    bad = library.parse_header(text)
    assert "tzip_not_built" in bad.functions and bad.version == hdr.version
    if library.packaged("portable") is None:
        pytest.skip("the C library is not built")
    with pytest.raises(library.AbiMismatch, match="tzip_not_built"):
        library.load(library.packaged("portable"), bad)
