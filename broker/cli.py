"""The `tierbroker` command line.

    tierbroker serve [--config server.properties] [--override key=value ...] [--event-loop uvloop|asyncio]
    tierbroker groups list|describe GROUP [--bootstrap-server HOST:PORT] [--json]
    tierbroker topics create|list|describe|alter ... [--bootstrap-server HOST:PORT] [--json]
    tierbroker tier status|rollback|recover ... [--bootstrap-server HOST:PORT] [--json]

With no arguments the broker runs on its embedded defaults: PLAINTEXT on
127.0.0.1:9092, data under ./data.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from . import cli_groups, cli_tier, cli_topics, event_loop
from .config import BrokerConfig, InvalidConfigError, PropertiesSyntaxError

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierbroker", description="Kafka-compatible broker with tiered storage")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the broker")
    serve.add_argument("--config", type=Path, help="a Kafka-style server.properties file")
    serve.add_argument("--override", action="append", default=[], type=_parse_override, metavar="KEY=VALUE",
                       help="set a broker config key (repeatable); wins over the file and the environment")
    serve.add_argument("--event-loop", choices=event_loop.CHOICES,
                       help="the asyncio event loop to run on (default uvloop where installed, else asyncio)")
    serve.add_argument("--log-level", default=os.environ.get("TIERBROKER_LOG_LEVEL", "INFO"),
                       help="logging level (default INFO)")
    cli_groups.add_subcommand(commands)
    cli_topics.add_subcommand(commands)
    cli_tier.add_subcommand(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "groups":
        return cli_groups.main(args)
    if args.command == "topics":
        return cli_topics.main(args)
    if args.command == "tier":
        return cli_tier.main(args)
    return 2


def _serve(args) -> int:
    from .server import serve  # the server's imports (S3, HTTP) are not needed by the admin commands

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        config = BrokerConfig.load(args.config, dict(args.override), os.environ)
    except (InvalidConfigError, PropertiesSyntaxError, OSError) as exc:
        print(f"tierbroker: {exc}", file=sys.stderr)
        return 2
    loop_choice = args.event_loop or event_loop.default_choice()
    try:
        factory = event_loop.loop_factory(loop_choice)
    except ValueError as exc:
        print(f"tierbroker: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("broker.server").info("event loop: %s", loop_choice)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config))
    except OSError as exc:
        logging.getLogger("broker.server").error("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
