"""Assemble docs/REPRODUCTION.md from the regenerated tables in docs/reproduction/.

Run from the repository root after `docs/reproduction/run_tables.sh`:
    python docs/reproduction/build_page.py
"""

from pathlib import Path

HERE = Path("docs/reproduction")


def timing(table: int) -> str:
    for line in (HERE / "timings.txt").read_text().splitlines():
        if line.startswith(f"table {table}:"):
            return line.split(":", 1)[1].strip()
    return "not run"


def main() -> None:
    intro = (HERE / "intro.md").read_text()
    discussion = (HERE / "discussion.md").read_text()
    parts = [intro]
    for table in range(1, 8):
        body = (HERE / f"table{table}.md").read_text().strip()
        parts.append(f"## Table {table}\n\nRun time: {timing(table)}.\n\n{body}\n")
    parts.append(discussion)
    Path("docs/REPRODUCTION.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
