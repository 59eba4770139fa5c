"""Alias of the HAMT-to-sharded converter under py-hamt 3.x's module path:
``convert_hamt_to_sharded`` (the library function) and
``sharded_converter_cli`` (the console command, imported only when asked,
so that importing the library never imports the CLI)."""

from py_hamt.jobs.convert import convert_hamt_to_sharded

__all__ = ["convert_hamt_to_sharded", "sharded_converter_cli"]  # noqa: F822 - lazy


def __getattr__(name: str) -> object:
    if name == "sharded_converter_cli":
        from py_hamt.cli.sharded_converter import sharded_converter_cli

        return sharded_converter_cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
