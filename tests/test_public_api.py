"""Everything the API spec promises is importable from ``py_hamt``."""

from __future__ import annotations

import inspect

import py_hamt
from py_hamt import errors

SPEC_NAMES = {"HAMT", "ContentAddressedStore", "InMemoryCAS", "ZarrHAMTStore", "blake3_hashfn"}


def test_all_is_complete_and_exact() -> None:
    public = {
        name
        for name, value in vars(py_hamt).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("py_hamt")
    }
    assert public <= set(py_hamt.__all__)
    assert set(py_hamt.__all__) >= SPEC_NAMES
    for name in py_hamt.__all__:
        assert hasattr(py_hamt, name), name


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
