"""Create the demo database schema and fill it with a healthy recent history.

    python -m demo.seed [--database-url URL]      (default: $DATABASE_URL or sqlite:///var/demo.db)

Safe to run again: it replaces only its own ``seed-`` rows.
"""

from __future__ import annotations

import argparse
import os
import sys

from demo import database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create and seed the demo app database.")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or database.DEFAULT_URL)
    args = parser.parse_args(argv)
    engine = database.make_engine(args.database_url)
    try:
        counts = database.seed(engine)
    finally:
        engine.dispose()
    summary = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"seeded {engine.url.render_as_string(hide_password=True)}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
