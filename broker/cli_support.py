"""What every admin command of the CLI shares: how it finds the broker and how it prints."""

from __future__ import annotations

import argparse

DEFAULT_BOOTSTRAP = "localhost:9092"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--bootstrap-server and --json, as Kafka's own tools take them."""
    parser.add_argument("--bootstrap-server", default=DEFAULT_BOOTSTRAP, metavar="HOST:PORT",
                        help=f"the broker to ask (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def dash(value) -> str:
    """A table cell: '-' for a missing value."""
    return "-" if value is None else str(value)


def table(header: list[str], rows: list[list]) -> str:
    """Left-aligned columns separated by two spaces, for people."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
