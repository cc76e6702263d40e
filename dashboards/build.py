"""Generate the dashboards: `python -m dashboards.build [--check]`.

Runs every dashboards/*.dashboard.py (grafanalib; each defines `dashboard`), normalises the JSON to
the modern schema (dashboards.common.to_json) and writes dashboards/json/<name>.json, the files
Grafana provisions. `--check` exits 1 when a committed file differs from what the source
generates.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path
from typing import Any

from dashboards.common import to_json

DASHBOARDS_DIR = Path(__file__).resolve().parent
JSON_DIR = DASHBOARDS_DIR / "json"
SUFFIX = ".dashboard.py"


def sources() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob(f"*{SUFFIX}"))


def build(source: Path) -> dict[str, Any]:
    namespace = runpy.run_path(str(source))
    if "dashboard" not in namespace:
        raise SystemExit(f"{source}: defines no `dashboard`; assign the grafanalib Dashboard to it")
    return to_json(namespace["dashboard"])


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        source.name.removesuffix(SUFFIX) + ".json": json.dumps(
            build(source), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for source in sources()
    }


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    rendered = render()
    stale = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
    leftovers = [p.name for p in directory.glob("*.json") if p.name not in rendered]
    return stale + leftovers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed JSON is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"{JSON_DIR / name} is stale: run python -m dashboards.build", file=sys.stderr)
        return 1 if stale else 0
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        path = JSON_DIR / name
        path.write_text(text, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
