"""KuboCAS: blocks written through Kubo's HTTP RPC, read through a gateway.

What is verified:

* **Whole-block reads** of ``raw`` and ``dag-cbor`` CIDs (every HAMT node and
  every value up to one chunk) are fetched as the raw block
  (``Accept: application/vnd.ipld.raw``) and checked against the CID's
  multihash (blake3 or sha2-256) before they are returned. A mismatch raises
  :class:`~py_hamt.errors.IntegrityError`; the bytes are never returned.
* **Ranged reads** of a raw block cannot be checked on their own: a slice
  does not hash to the CID. By default they are *not verified*; only the
  length the gateway claims is checked. With ``verify_ranges=True`` the
  whole block is fetched, verified and cached, and the range is cut from it.
* **dag-pb CIDs** (values larger than one chunk, stored by Kubo as a UnixFS
  file) are read as the file's bytes through the gateway and are *not
  verified*: checking them means walking the UnixFS DAG.
* **Writes**: the digest of the bytes sent is computed locally; for a
  single-block add it must equal the multihash in the CID Kubo answers
  (and the size it reports must match), or
  :class:`~py_hamt.errors.IntegrityError` is raised and no id is returned, so
  nothing can point at the bad block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import httpx
from multiformats import CID

from py_hamt import observability
from py_hamt.caching import LRUCache
from py_hamt.cas.base import (
    Codec,
    ContentAddressedStore,
    IPLDKind,
    check_echo,
    slice_range,
    verify_block,
)
from py_hamt.cas.gateways import DEFAULT_REQUEST_DEADLINE, GatewayRouter, HedgeConfig
from py_hamt.cas.http import (
    DEFAULT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    ClientPool,
    RetryPolicy,
    capped_timeout,
    origin_of,
    send_once,
    send_with_retries,
)
from py_hamt.cas.write_result import ContentDigest, DigestAlgorithm, WriteResult
from py_hamt.codec.cids import DAG_CBOR, RAW, cid_from_text, coerce_cid, make_cid
from py_hamt.codec.multihash import HASH_FUNCTIONS, split_multihash
from py_hamt.errors import HTTPStatusError, IntegrityError, InvalidArgumentError

__all__ = ["DEFAULT_GATEWAY_URL", "DEFAULT_RPC_URL", "KuboCAS"]

DEFAULT_RPC_URL: Final = "http://127.0.0.1:5001"
DEFAULT_GATEWAY_URL: Final = "http://127.0.0.1:8080"
DEFAULT_CHUNKER: Final = "size-1048576"
DEFAULT_VERIFIED_CACHE_BYTES: Final = 64 * 2**20
HAS_TIMEOUT: Final = 2.0

_CHUNKER = re.compile(r"^(size-[1-9][0-9]*|rabin|rabin-[1-9][0-9]*-[1-9][0-9]*-[1-9][0-9]*)$")
_DAG_PB: Final = 0x70
_RAW_ACCEPT: Final = "application/vnd.ipld.raw"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _base_url(url: str, what: str, strip: str) -> str:
    """Validate an http(s) URL and cut it back to scheme://host[:port][/prefix]."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"{what} must be a str, got {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgumentError(f"{what} must be an http(s) URL, got {url!r}")
    path = parts.path.rstrip("/")
    cut = path.find(strip)
    if cut >= 0:
        path = path[:cut]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _cid_from_text(text: object) -> CID:
    """Parse a CID in any multibase, as returned by Kubo or js-ipfs.

    Raises IntegrityError (naming the answer) for anything else, including a
    CID with a truncated digest.
    """
    try:
        if not isinstance(text, str):
            raise InvalidArgumentError(f"a {type(text).__name__}, not text")
        return cid_from_text(text)
    except ValueError as exc:
        raise IntegrityError(f"the node answered with an invalid CID {text!r}: {exc}") from exc


def _json_lines(response: httpx.Response, url: str) -> list[dict[str, Any]]:
    """The JSON objects of a newline-delimited answer.

    Raises IntegrityError (naming ``url``) for a line that is not a JSON object.
    """
    found: list[dict[str, Any]] = []
    for line in response.text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"{url} answered with invalid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise IntegrityError(f"{url} answered {line[:200]!r}, not a JSON object")
        found.append(parsed)
    return found


def _range_header(offset: int | None, length: int | None, suffix: int | None) -> str:
    if suffix is not None:
        return f"bytes=-{suffix}"
    start = offset or 0
    if length is None:
        return f"bytes={start}-"
    return f"bytes={start}-{start + length - 1}"


class KuboCAS(ContentAddressedStore):
    """A content-addressed store on an IPFS node (Kubo, or anything speaking
    its RPC) and an IPFS path gateway.

    Args:
        hasher: ``"blake3"`` (default) or ``"sha2-256"``.
        client: an ``httpx.AsyncClient`` to use for every request; it stays
            the caller's to close. ``headers`` are added to each request.
        rpc_base_url: the RPC endpoint (default ``http://127.0.0.1:5001``);
            a trailing ``/`` or ``/api/v0`` is removed.
        gateway_base_url: the gateway (default ``http://127.0.0.1:8080``); a
            trailing ``/`` or ``/ipfs/...`` path is removed.
        concurrency: requests in flight at most, per event loop.
        headers, auth: applied to the clients KuboCAS makes itself.
        pin_on_add: pin every block as it is added.
        chunker: Kubo's chunker: ``size-<n>``, ``rabin`` or
            ``rabin-<min>-<avg>-<max>``.
        max_retries, initial_delay, backoff_factor: the retry policy for
            timeouts, connection errors and 429/502/503/504.
        timeout: per-request timeout (seconds or an ``httpx.Timeout``). A
            gateway that hangs on a CID it lacks fails after it, on each try.
        total_timeout: seconds a block read (or ``has``) may take across
            all its tries and waits (default 30; ``None``: no limit). A block
            the gateway lacks, answered with 504s or not at all, fails within
            this long with an error saying the block is not available. Each
            try's timeouts are cut to the time left. Writes, imports and pins
            are bounded by ``timeout`` and ``max_retries`` only.
        verify_ranges: verify ranged reads by fetching the whole block.
        verified_cache_bytes: bytes of verified blocks kept for ranged reads.
        transport: an httpx transport for the clients KuboCAS makes (proxies,
            custom TLS, or ``httpx.MockTransport`` in tests).

    Raises:
        InvalidArgumentError: any argument out of range (a ``ValueError``).

    Reads touch only the gateway, so a read-only user needs no RPC endpoint.
    Use ``async with KuboCAS(...) as cas`` or ``await cas.aclose()`` to close
    the clients it made.
    """

    def __init__(
        self,
        hasher: str = "blake3",
        client: httpx.AsyncClient | None = None,
        rpc_base_url: str | None = None,
        gateway_base_url: str | None = None,
        concurrency: int = 32,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        pin_on_add: bool = False,
        chunker: str = DEFAULT_CHUNKER,
        max_retries: int = 3,
        initial_delay: float = 1.0,
        backoff_factor: float = 2.0,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        total_timeout: float | None = DEFAULT_TOTAL_TIMEOUT,
        verify_ranges: bool = False,
        verified_cache_bytes: int = DEFAULT_VERIFIED_CACHE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        gateway_base_urls: Sequence[str] | None = None,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
        hedge: bool = True,
        hedge_budget: float = 0.10,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        gateway_cooldown: float = 10.0,
    ) -> None:
        if not isinstance(hasher, str) or hasher not in HASH_FUNCTIONS:
            raise InvalidArgumentError(
                f"hasher must be one of {sorted(HASH_FUNCTIONS)}, got {hasher!r}"
            )
        if not isinstance(chunker, str) or not _CHUNKER.match(chunker):
            raise InvalidArgumentError(
                f"chunker must be size-<n>, rabin or rabin-<min>-<avg>-<max>, got {chunker!r}"
            )
        if not isinstance(verified_cache_bytes, int) or verified_cache_bytes < 0:
            raise InvalidArgumentError(
                f"verified_cache_bytes must be an int >= 0, got {verified_cache_bytes!r}"
            )
        self.hasher: DigestAlgorithm = "blake3" if hasher == "blake3" else "sha2-256"
        self._hash_code = HASH_FUNCTIONS[hasher].code
        self.chunker = chunker
        self.pin_on_add = bool(pin_on_add)
        self.rpc_base_url = _base_url(rpc_base_url or DEFAULT_RPC_URL, "rpc_base_url", "/api/v0")
        if gateway_base_urls is not None:
            if gateway_base_url is not None:
                raise InvalidArgumentError(
                    "gateway_base_url and gateway_base_urls are exclusive: "
                    "list every gateway in gateway_base_urls"
                )
            if isinstance(gateway_base_urls, str) or not gateway_base_urls:
                raise InvalidArgumentError(
                    f"gateway_base_urls must be a non-empty list of URLs, got {gateway_base_urls!r}"
                )
            urls = [_base_url(u, "gateway_base_urls", "/ipfs") for u in gateway_base_urls]
        else:
            urls = [_base_url(gateway_base_url or DEFAULT_GATEWAY_URL, "gateway_base_url", "/ipfs")]
        self.gateway_base_urls = list(dict.fromkeys(urls))
        self.gateway_base_url = self.gateway_base_urls[0]
        # The caller's headers and auth are for these origins only.
        self._credentialed = {origin_of(self.gateway_base_url), origin_of(self.rpc_base_url)}
        self._router = GatewayRouter(
            self.gateway_base_urls,
            HedgeConfig(
                enabled=bool(hedge),
                budget=hedge_budget,
                cooldown=gateway_cooldown,
                request_deadline=request_deadline,
            ),
        )
        self.retry = RetryPolicy(
            max_retries=max_retries,
            initial_delay=initial_delay,
            backoff_factor=backoff_factor,
            total_timeout=total_timeout,
        )
        if client is not None and client_factory is not None:
            raise InvalidArgumentError("client and client_factory are exclusive")
        self._pool = ClientPool(
            client,
            client_factory=client_factory,
            headers=headers,
            auth=auth,
            timeout=timeout,
            concurrency=concurrency,
            transport=transport,
        )
        self.verify_ranges = bool(verify_ranges)
        # Whole blocks fetched for verified ranges, by CID (locked: a KuboCAS
        # is shared by zarr's loop thread and dask's worker threads).
        self._verified: LRUCache[CID, bytes] = LRUCache(verified_cache_bytes, len)

    # ------------------------------------------------------------- lifecycle
    async def aclose(self) -> None:
        """Close the HTTP client KuboCAS made for the running event loop."""
        await self._pool.aclose()

    async def __aenter__(self) -> KuboCAS:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"KuboCAS(rpc={self.rpc_base_url!r}, gateway={self.gateway_base_url!r})"

    @property
    def _verified_bytes(self) -> int:
        """Bytes held by the verified-block cache (at most ``verified_cache_bytes``)."""
        return self._verified.nbytes

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration (for dask workers); caches stay behind."""
        state = self.__dict__.copy()
        state.update(_verified=LRUCache(self._verified.max_bytes, len))
        return state

    # ----------------------------------------------------------------- write
    async def put(
        self, data: bytes, codec: Codec, *, digest: DigestAlgorithm = "blake3"
    ) -> WriteResult:
        """Add ``data`` with ``/api/v0/add``; return its CIDv1 in a
        :class:`WriteResult` with what Kubo echoed (``Hash``, ``Name``,
        ``Size``), compared with the digest of the bytes sent.

        A single-block result is relabelled with ``codec`` (so a node saved as
        ``dag-cbor`` gets a ``bafyr…`` CID); a multi-block file keeps Kubo's
        dag-pb CID.

        Raises:
            InvalidArgumentError: ``codec`` is not ``raw`` or ``dag-cbor``.
            IntegrityError: Kubo's CID or size disagrees with the bytes sent.
            TransportError: the RPC endpoint failed (see :mod:`py_hamt.cas.http`).
        """
        if codec not in ("raw", "dag-cbor"):
            raise InvalidArgumentError(f"codec must be 'raw' or 'dag-cbor', got {codec!r}")
        data = bytes(data)
        own = ContentDigest.of(data, self.hasher)  # computed before it is sent
        client = own if digest == self.hasher else ContentDigest.of(data, digest)
        cid, answer = await self._add(data, codec, own.value)
        check_echo(cid, client)
        echoed: dict[str, Any] = {k: answer[k] for k in ("Hash", "Name", "Size") if k in answer}
        if observability.ACTIVE:
            observability.wrote(codec, len(data))
        return WriteResult(id=cid, size=len(data), digest=client, echoed=echoed)

    if TYPE_CHECKING:  # ``save`` is the base class's; only its id type is narrowed here

        async def save(self, data: bytes, codec: Codec) -> CID: ...

    async def _add(self, data: bytes, codec: Codec, digest: bytes) -> tuple[CID, dict[str, Any]]:
        url = f"{self.rpc_base_url}/api/v0/add"
        params = {
            "hash": self.hasher,
            "chunker": self.chunker,
            "pin": "true" if self.pin_on_add else "false",
            "cid-version": "1",
            "raw-leaves": "true",
            "cid-base": "base32",
        }
        answer = await self._post_file(url, params, data)
        cid = _cid_from_text(str(answer.get("Hash", "")))
        if cid.codec.code == _DAG_PB:
            return cid, answer
        code, echoed = split_multihash(bytes(cid.digest))
        if code != self._hash_code or echoed != digest:
            raise IntegrityError(
                f"{url} stored {len(data)} bytes under {cid}, but their {self.hasher} digest "
                f"is {digest.hex()}: the node did not store what was sent",
                cid,
            )
        size = answer.get("Size")
        try:
            reported = None if size is None else int(size)
        except (TypeError, ValueError):
            raise IntegrityError(f"{url} reports a size {size!r} for {cid}", cid) from None
        if reported is not None and reported != len(data):
            raise IntegrityError(
                f"{url} reports {size} bytes for {cid}, but {len(data)} were sent", cid
            )
        relabelled = make_cid(DAG_CBOR if codec == "dag-cbor" else RAW, bytes(cid.digest))
        return relabelled, answer

    # ------------------------------------------------------ blocks and CARs
    async def has(self, id: IPLDKind) -> bool:  # noqa: A002
        """Whether the node holds the block locally (``block/stat``, offline).

        Kubo answers at once with ``offline=true``; nodes that would search
        the network instead give up after :data:`HAS_TIMEOUT` seconds.
        """
        cid = self._as_cid(id)
        url = f"{self.rpc_base_url}/api/v0/block/stat"
        params = {"arg": str(cid), "offline": "true", "timeout": f"{HAS_TIMEOUT}s"}
        try:
            await send_with_retries(
                self._pool, self.retry, "POST", url, params=params, block_id=cid
            )
        except HTTPStatusError as exc:
            if exc.status_code in (404, 500):
                return False
            raise
        return True

    async def local_multihashes(self) -> set[bytes]:
        """The multihashes of every block the node holds (``refs/local``)."""
        url = f"{self.rpc_base_url}/api/v0/refs/local"
        response = await send_with_retries(self._pool, self.retry, "POST", url)
        held: set[bytes] = set()
        for answer in _json_lines(response, url):
            ref = answer.get("Ref")
            if ref:
                held.add(bytes(_cid_from_text(ref).digest))
        return held

    async def put_block(self, cid: CID, data: bytes) -> WriteResult:
        """Store ``data`` as block ``cid`` with ``block/put`` (verified first).

        Raises:
            InvalidArgumentError: ``cid`` is not a CID or has a truncated digest.
            IntegrityError: ``data`` does not hash to ``cid``, or the node
                stored it under another CID.
        """
        cid = coerce_cid(cid, "cid")
        data = bytes(data)
        client = verify_block(cid, data)
        url = f"{self.rpc_base_url}/api/v0/block/put"
        params = {
            "format": "raw",  # the only form every node honours; codec is in the CID
            "mhtype": cid.hashfun.name,
            "pin": "false",
        }
        answer = await self._post_file(url, params, data)
        stored = _cid_from_text(str(answer.get("Key", "")))
        if stored.digest != cid.digest:
            raise IntegrityError(f"{url} stored {cid} as {stored}", cid)
        return WriteResult(id=cid, size=len(data), digest=client, echoed=answer)

    async def import_car(self, car: bytes, *, pin_roots: bool = False) -> list[CID]:
        """Import a CAR in one ``dag/import`` request; return its root CIDs.

        Kubo's importer may not verify blocks; py_hamt's CAR import checks
        every block before it builds ``car``.
        """
        url = f"{self.rpc_base_url}/api/v0/dag/import"
        response = await send_with_retries(
            self._pool,
            self.retry,
            "POST",
            url,
            params={"pin-roots": "true" if pin_roots else "false"},
            files={"file": ("data.car", car, "application/vnd.ipld.car")},
        )
        roots: list[CID] = []
        for answer in _json_lines(response, url):
            root = answer.get("Root")
            if isinstance(root, dict) and isinstance(root.get("Cid"), dict):
                roots.append(_cid_from_text(root["Cid"].get("/")))
        return roots

    async def _post_file(
        self,
        url: str,
        params: dict[str, str],
        data: bytes,
        name: str = "block",
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """POST ``data`` as a multipart file (every part with a content type,
        which js-ipfs needs); return the last JSON object answered."""
        response = await send_with_retries(
            self._pool,
            self.retry,
            "POST",
            url,
            params=params,
            files={"file": (name, data, content_type)},
        )
        return self._last_json(response, url)

    @staticmethod
    def _last_json(response: httpx.Response, url: str) -> dict[str, Any]:
        # add may stream several JSON objects (one per line); the last is the file.
        lines = [ln for ln in response.text.splitlines() if ln.strip()]
        try:
            parsed = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"{url} answered with invalid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise IntegrityError(f"{url} answered {response.text[:200]!r}, not a JSON object")
        return parsed

    # ------------------------------------------------------------------ read
    @staticmethod
    def _as_cid(block_id: IPLDKind) -> CID:
        return coerce_cid(block_id, owner="KuboCAS", binary=True)

    async def _load(
        self,
        id: IPLDKind,  # noqa: A002
        offset: int | None,
        length: int | None,
        suffix: int | None,
    ) -> bytes:
        """Read a block, or a byte range of it, through the gateway.

        Whole raw/dag-cbor blocks are verified (see the module docstring).
        Edges: ``suffix=0`` and ``length=0`` are empty without a request; a
        range starting past the end is empty.

        Raises:
            InvalidArgumentError: ``id`` is not a CID or has a truncated digest.
            IntegrityError: the gateway's bytes do not match the CID.
            BlockNotFoundError: the gateway answered 404.
            TransportError: the gateway failed, after retries or at the total
                deadline (the message says the block is not available).
        """
        cid = self._as_cid(id)
        ranged = offset is not None or length is not None or suffix is not None
        verifiable = cid.codec.code != _DAG_PB
        if not ranged:
            return await self._whole(cid) if verifiable else await self._file(cid)
        if suffix == 0 or length == 0:
            return b""
        if verifiable and self.verify_ranges:
            return slice_range(await self._whole(cid, cache=True), offset, length, suffix)
        return await self._ranged(cid, offset, length, suffix, verifiable)

    async def _whole(self, cid: CID, cache: bool = False) -> bytes:
        cached = self._verified.get(cid)
        if cached is not None:
            return cached

        async def attempt(base: str, left: float | None) -> bytes:
            url = f"{base}/ipfs/{cid.encode('base32')}"
            response = await self._get(url, cid, {"Accept": _RAW_ACCEPT}, left)
            self._verify(cid, response.content, url)
            return response.content

        data = await self._router.fetch(attempt, self.retry, cid)
        if cache:
            self._remember(cid, data)
        return data

    @staticmethod
    def _verify(cid: CID, data: bytes, url: str) -> None:
        try:
            verify_block(cid, data)
        except IntegrityError as exc:
            raise IntegrityError(f"{url}: {exc}", cid) from exc

    def _remember(self, cid: CID, data: bytes) -> None:
        self._verified.put(cid, data)  # a block over the limit is not kept

    def _is_credentialed(self, url: str) -> bool:
        return origin_of(url) in self._credentialed

    async def _get(
        self, url: str, cid: CID, headers: dict[str, str], left: float | None
    ) -> httpx.Response:
        """One GET of a block from one gateway (no retries: the router
        moves on to the next gateway instead); its timeouts are cut to the
        ``left`` seconds of the read's total deadline."""
        extra: dict[str, Any] = {}
        if left is not None:
            extra["timeout"] = capped_timeout(self._pool.client().timeout, max(left, 0.001))
        return await send_once(
            self._pool,
            "GET",
            url,
            block_id=cid,
            not_found_is_missing_block=True,
            credentialed=self._is_credentialed,
            headers=headers,
            **extra,
        )

    async def _file(self, cid: CID) -> bytes:
        async def attempt(base: str, left: float | None) -> bytes:
            url = f"{base}/ipfs/{cid.encode('base32')}"
            return (await self._get(url, cid, {}, left)).content

        return await self._router.fetch(attempt, self.retry, cid)

    async def _ranged(
        self,
        cid: CID,
        offset: int | None,
        length: int | None,
        suffix: int | None,
        verifiable: bool,
    ) -> bytes:
        if cid.codec.code == DAG_CBOR:
            # Nodes are small, and a gateway may refuse a range of one (the
            # JS gateway answers 500): fetch it whole, verify it, cut the range.
            return slice_range(await self._whole(cid, cache=True), offset, length, suffix)

        async def attempt(base: str, left: float | None) -> bytes:
            url = f"{base}/ipfs/{cid.encode('base32')}"
            ranged = {"Range": _range_header(offset, length, suffix)}
            try:
                response = await self._get(url, cid, ranged, left)
            except HTTPStatusError as exc:
                if exc.status_code == 416:  # the range starts past the end
                    return b""
                raise
            return self._check_range_answer(cid, url, response, offset, length, suffix, verifiable)

        return await self._router.fetch(attempt, self.retry, cid)

    def _check_range_answer(
        self,
        cid: CID,
        url: str,
        response: httpx.Response,
        offset: int | None,
        length: int | None,
        suffix: int | None,
        verifiable: bool,
    ) -> bytes:
        body = response.content
        if response.status_code == 200:
            # The gateway ignored the range and sent everything: check and cut.
            if verifiable:
                self._verify(cid, body, url)
            return slice_range(body, offset, length, suffix)
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is not None:
            first, last = int(match[1]), int(match[2])
            if len(body) != last - first + 1:
                raise IntegrityError(
                    f"{url} sent {len(body)} bytes for range {first}-{last} of {cid}", cid
                )
        elif length is not None and len(body) > length:
            raise IntegrityError(f"{url} sent {len(body)} bytes for {length} asked of {cid}", cid)
        return body

    # ------------------------------------------------------------------ pins
    def _rpc(self, target_rpc: str | None) -> str:
        if target_rpc is None:
            return self.rpc_base_url
        return _base_url(target_rpc, "target_rpc", "/api/v0")

    async def _pin_call(
        self,
        verb: Literal["add", "rm", "update", "ls"],
        args: list[tuple[str, str]],
        target_rpc: str | None,
    ) -> httpx.Response:
        url = f"{self._rpc(target_rpc)}/api/v0/pin/{verb}"
        return await send_with_retries(self._pool, self.retry, "POST", url, params=args)

    async def pin_cid(self, id: IPLDKind, target_rpc: str | None = None) -> None:  # noqa: A002
        """Pin ``id`` and everything under it (``pin/add``, recursive)."""
        cid = self._as_cid(id)
        await self._pin_call("add", [("arg", str(cid)), ("recursive", "true")], target_rpc)

    async def unpin_cid(self, id: IPLDKind, target_rpc: str | None = None) -> None:  # noqa: A002
        """Remove the recursive pin on ``id`` (``pin/rm``)."""
        cid = self._as_cid(id)
        await self._pin_call("rm", [("arg", str(cid)), ("recursive", "true")], target_rpc)

    async def pin_update(
        self, old_id: IPLDKind, new_id: IPLDKind, target_rpc: str | None = None
    ) -> None:
        """Move a recursive pin from ``old_id`` to ``new_id`` (``pin/update``)."""
        old, new = self._as_cid(old_id), self._as_cid(new_id)
        await self._pin_call("update", [("arg", str(old)), ("arg", str(new))], target_rpc)

    async def pin_ls(self, target_rpc: str | None = None) -> list[IPLDKind]:
        """The recursively pinned CIDs (``pin/ls?type=recursive``)."""
        response = await self._pin_call("ls", [("type", "recursive")], target_rpc)
        keys: dict[str, Any] = {}
        for answer in _json_lines(response, str(response.url)):
            found = answer.get("Keys", {})
            if isinstance(found, dict):
                keys.update(found)
        return [_cid_from_text(k) for k in keys]
