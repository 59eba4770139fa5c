"""Everything the API spec promises is importable from ``py_hamt``."""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import sys
from pathlib import Path

import py_hamt
from py_hamt import errors

SPEC_NAMES = {"HAMT", "ContentAddressedStore", "InMemoryCAS", "ZarrHAMTStore", "blake3_hashfn"}


def test_all_is_complete_and_exact() -> None:
    # Names load lazily (PEP 562): resolve everything the module offers.
    namespace = {name: getattr(py_hamt, name) for name in dir(py_hamt)}
    public = {
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("py_hamt")
    }
    assert public <= set(py_hamt.__all__)
    assert set(py_hamt.__all__) >= SPEC_NAMES
    for name in py_hamt.__all__:
        assert hasattr(py_hamt, name), name
    assert set(py_hamt.__all__) <= set(dir(py_hamt))


def test_importing_py_hamt_loads_no_heavy_library_and_names_resolve_lazily() -> None:
    script = """
import sys
import py_hamt
heavy = sorted(m for m in ("zarr", "numpy", "httpx", "xarray", "dask") if m in sys.modules)
from py_hamt import HAMT, ZarrHAMTStore, sharded_converter_cli
from py_hamt.trie.hamt import HAMT as DefinedHAMT
assert HAMT is DefinedHAMT and py_hamt.HAMT is HAMT, "lazy names are the real objects"
assert "zarr" in sys.modules, "ZarrHAMTStore loads zarr when asked for"
assert py_hamt.sharded_converter_cli is sharded_converter_cli
try:
    py_hamt.NoSuchName
except AttributeError as exc:
    assert "NoSuchName" in str(exc)
else:
    raise AssertionError("unknown names must raise AttributeError")
print(heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_stores_use_only_public_zarr_modules_but_the_one_sync_import() -> None:
    from zarr.abc.buffer import Buffer, BufferPrototype

    from py_hamt.stores import hamt_store, store_mixin
    from py_hamt.stores.sharded import store as sharded_store

    stores = Path(py_hamt.__file__).parent / "stores"
    private = {
        str(path.relative_to(stores)): node.module
        for path in sorted(stores.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zarr.core")
    }
    assert private == {"store_mixin.py": "zarr.core.sync"}
    for module in (hamt_store, store_mixin, sharded_store):
        assert module.Buffer is Buffer, module
        assert module.BufferPrototype is BufferPrototype, module


def test_a_zarr_without_its_sync_helper_still_imports_and_sync_methods_say_so() -> None:
    script = """
import asyncio, sys
import zarr.core.sync
del zarr.core.sync.sync  # what a zarr that moved it looks like to py_hamt
from py_hamt import HAMT, InMemoryCAS, PyHamtError, ZarrHAMTStore

async def store():
    return ZarrHAMTStore(await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True))

s = asyncio.run(store())
try:
    s.get_sync("zarr.json")
except PyHamtError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "need zarr.core.sync.sync, which this zarr does not have" in done.stdout
    assert "RuntimeWarning" not in done.stderr  # the coroutine was closed, not leaked


def test_sync_methods_still_run_on_zarrs_loop() -> None:
    from zarr.core.buffer import default_buffer_prototype

    async def build() -> py_hamt.ZarrHAMTStore:
        hamt = await py_hamt.HAMT.build(cas=py_hamt.InMemoryCAS(), values_are_bytes=True)
        return py_hamt.ZarrHAMTStore(hamt, read_only=False)

    store = asyncio.run(build())
    store.set_sync("a", default_buffer_prototype().buffer.from_bytes(b"xyz"))
    got = store.get_sync("a")
    assert got is not None
    assert got.to_bytes() == b"xyz"
    store.delete_sync("a")
    assert store.get_sync("a") is None


def test_every_error_is_exported_and_in_the_tree() -> None:
    classes = [v for v in vars(errors).values() if inspect.isclass(v) and issubclass(v, Exception)]
    for cls in classes:
        assert issubclass(cls, errors.PyHamtError), cls
        assert cls.__name__ in py_hamt.__all__, cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} missing from the tree"


def test_builtin_bases_let_callers_catch_naturally() -> None:
    assert issubclass(py_hamt.KeyNotFoundError, KeyError)
    assert issubclass(py_hamt.BlockNotFoundError, KeyError)
    assert issubclass(py_hamt.InvalidArgumentError, ValueError)
    assert issubclass(py_hamt.ReadOnlyError, ValueError)
    assert issubclass(py_hamt.MalformedNodeError, py_hamt.IntegrityError)


def test_package_is_typed() -> None:
    from pathlib import Path

    assert Path(py_hamt.__file__).with_name("py.typed").is_file()


def test_py_hamt_3x_module_paths_are_aliases_of_the_public_names() -> None:
    import importlib

    expected = {
        "py_hamt.hamt": ["HAMT", "blake3_hashfn"],
        "py_hamt.store_httpx": [
            "ContentAddressedStore",
            "InMemoryCAS",
            "KuboCAS",
            "GatewayContentMismatch",
            "GatewayContentUnverifiable",
        ],
        "py_hamt.zarr_hamt_store": ["ZarrHAMTStore"],
        "py_hamt.encryption_hamt_store": ["SimpleEncryptedZarrHAMTStore"],
        "py_hamt.sharded_zarr_store": [
            "ShardedZarrStore",
            "ShardReadMode",
            "ShardedZarrV1DeprecationWarning",
        ],
        "py_hamt.hamt_to_sharded_converter": ["convert_hamt_to_sharded", "sharded_converter_cli"],
    }
    for module_name, names in expected.items():
        module = importlib.import_module(module_name)
        assert sorted(module.__all__) == sorted(names), module_name
        for name in names:
            assert getattr(module, name) is getattr(py_hamt, name), f"{module_name}.{name}"


def test_py_hamt_36_names_are_exported_and_its_errors_sit_in_the_tree() -> None:
    assert issubclass(py_hamt.GatewayContentMismatch, py_hamt.IntegrityError)
    assert issubclass(py_hamt.GatewayContentUnverifiable, py_hamt.GatewayContentMismatch)
    assert issubclass(py_hamt.ShardedZarrV1DeprecationWarning, FutureWarning)
    assert issubclass(py_hamt.AmbiguousLayoutError, py_hamt.MalformedNodeError)
