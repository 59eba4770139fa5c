"""KeyIndex answers listings exactly as a scan over every key would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from py_hamt.stores.key_index import KeyIndex

# Few letters, so keys share folders; "." and "0" sort next to "/".
parts = st.text(alphabet="ab.0/", max_size=3)
key_sets = st.lists(st.lists(parts, min_size=1, max_size=4).map("/".join), max_size=40)


def naive_directory(keys: list[str], prefix: str) -> list[str]:
    folder = prefix.rstrip("/")
    lead = folder + "/" if folder else ""
    names: list[str] = []
    for key in sorted(keys):
        if key.startswith(lead):
            name = key[len(lead) :].split("/")[0]
            if name not in names:
                names.append(name)
    return names


@settings(max_examples=300, deadline=None)
@given(key_sets, st.lists(parts, max_size=3).map("/".join))
def test_directory_matches_a_scan_of_every_key(keys: list[str], prefix: str) -> None:
    index = KeyIndex(set(keys))
    prefixes = {prefix, ""} | {k.rsplit("/", 1)[0] for k in keys}
    for p in prefixes:
        expected = naive_directory(list(set(keys)), p)
        assert index.directory(p) == expected, p
        assert index.directory(p + "/") == expected  # "a" and "a/" alike
        assert index.directory(p) == expected  # the remembered answer too


@settings(max_examples=200, deadline=None)
@given(key_sets, parts)
def test_with_prefix_is_every_matching_key_sorted(keys: list[str], prefix: str) -> None:
    index = KeyIndex(set(keys))
    assert index.with_prefix(prefix) == sorted(k for k in set(keys) if k.startswith(prefix))


def test_a_directory_skips_the_keys_below_its_subfolders() -> None:
    keys = [f"v/c/{i}/{j}" for i in range(30) for j in range(100)] + ["v/zarr.json", "v/c.x"]
    index = KeyIndex(keys)
    calls = 0
    real_startswith = str.startswith

    class Counting(str):
        def startswith(self, *args: object) -> bool:
            nonlocal calls
            calls += 1
            return real_startswith(self, *args)  # type: ignore[arg-type]

    index.keys = [Counting(k) for k in index.keys]
    assert sorted(index.directory("v/c")) == sorted(str(i) for i in range(30))
    assert calls <= 31  # one key per child and the one that ends the run, not 3,000
    assert index.directory("v") == naive_directory(keys, "v") == ["c.x", "c", "zarr.json"]
