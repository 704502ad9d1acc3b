"""Documents from the CLI: create a source, upload with progress, attach, search, detach."""

from __future__ import annotations

import io
import json
from pathlib import Path

from orchestrator.cli._sources import ProgressBar
from tests.orchestrator._cli import memgrid


def _ok(env: dict[str, str], *args: str) -> str:
    done = memgrid(env, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


def test_upload_shows_progress_and_attach_fills_archival_memory(
    env: dict[str, str], tmp_path: Path
) -> None:
    handbook = tmp_path / "handbook.txt"
    pages = [f"Page {n}. " + "Vacation policy text. " * 50 for n in range(50)]
    pages[17] = "Page 17. Every employee receives 25 days of paid vacation per year."
    handbook.write_text("\n\n".join(pages))
    _ok(env, "sources", "create", "hr")
    uploaded = _ok(env, "sources", "upload", "hr", str(handbook))
    # Not a terminal: one progress line per tenth, then the outcome.
    bars = [line for line in uploaded.splitlines() if line.startswith("handbook.txt [")]
    assert 3 <= len(bars) <= 12, uploaded
    assert bars[0].endswith(" 0/" + bars[-1].rsplit("/", 1)[1])
    assert "handbook.txt: completed, " in uploaded

    listed = json.loads(_ok(env, "sources", "list", "--json"))
    [meta] = listed[0]["files"]
    assert meta["status"] == "completed"
    assert meta["chunks_embedded"] == meta["total_chunks"] == meta["passages"] > 10

    _ok(env, "agents", "create", "reader", "--model", "openai/scripted")
    assert "passages copied" in _ok(env, "sources", "attach", "hr", "reader")
    found = json.loads(
        _ok(env, "memory", "reader", "archival", "search", "25 days paid vacation", "--json")
    )
    assert any("25 days of paid vacation" in hit["passage"]["text"] for hit in found)
    assert "passages removed" in _ok(env, "sources", "detach", "hr", "reader")
    assert "(no passages)" in _ok(env, "memory", "reader", "archival", "list")


def test_upload_mistakes_are_one_line_errors(env: dict[str, str], tmp_path: Path) -> None:
    _ok(env, "sources", "create", "docs")
    odd = tmp_path / "image.png"
    odd.write_bytes(b"\x89PNG")
    refused = memgrid(env, "sources", "upload", "docs", str(odd))
    assert refused.returncode == 2 and "image.png" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = memgrid(env, "sources", "upload", "docs", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "nope.txt" in missing.stderr
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    failed = memgrid(env, "sources", "upload", "docs", str(broken))
    assert failed.returncode == 1 and "broken.pdf: error: " in failed.stdout


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    bar = ProgressBar("f.txt", out=out, width=10)
    for done in (0, 5, 10):
        bar(done, 10)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("[##########] 10/10 chunks\n")
    assert "\rf.txt [#####.....] 5/10 chunks" in text
