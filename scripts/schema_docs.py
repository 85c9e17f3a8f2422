"""Write docs/SCHEMA.md from the Arrow schemas and column docs in pipeline/store/schema.py.

Usage: python scripts/schema_docs.py [--check]   (--check fails when the file is stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.store import local as store  # noqa: E402

TARGET = ROOT / "docs" / "SCHEMA.md"


def render() -> str:
    lines = ["# Output datasets", "",
             f"Schema version **{store.SCHEMA_VERSION}** (stored in every file's metadata as "
             "`callcycle.schema_version`; each column's description is stored in its field metadata).",
             "Generated from `pipeline/store/schema.py` by `python scripts/schema_docs.py`; do not edit by hand.", ""]
    for name, schema in (("segments", store.SEGMENTS_SCHEMA), ("calls", store.CALLS_SCHEMA),
                         ("errors", store.ERRORS_SCHEMA)):
        lines += [f"## `{name}/`", "", "| column | type | nullable | meaning |", "|---|---|---|---|"]
        for field in schema:
            meaning = store.COLUMN_DOCS[name][field.name].replace("|", "\\|")
            lines.append(f"| `{field.name}` | `{field.type}` | {'yes' if field.nullable else 'no'} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if not TARGET.is_file() or TARGET.read_text() != text:
            raise SystemExit("docs/SCHEMA.md is stale: run python scripts/schema_docs.py")
    else:
        TARGET.parent.mkdir(exist_ok=True)
        TARGET.write_text(text)
        print(f"wrote {TARGET}")
