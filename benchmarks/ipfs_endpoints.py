"""Where the Kubo benchmarks find the node: flags, or shared/ipfs-node's endpoints.env."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc", default="http://127.0.0.1:5001")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--endpoints", type=Path, help="an endpoints.env from shared/ipfs-node")


def resolve(args: argparse.Namespace) -> None:
    """Fill ``args.rpc`` and ``args.gateway`` from ``--endpoints`` when given."""
    if args.endpoints:
        env = dict(ln.split("=", 1) for ln in args.endpoints.read_text().splitlines() if "=" in ln)
        args.rpc, args.gateway = env["IPFS_RPC"], env["IPFS_GATEWAY"]
