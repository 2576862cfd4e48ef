"""The LTEM benchmark's split runs: parts merged from partial .json files, bad arguments refused."""

from __future__ import annotations

import json

from napari_phase.bench import ltem as bench


def _row(tex, acc):
    m = {"phase_acc": acc, "phase_acc_plane_free": acc, "b_acc": acc, "ssim": 0.5, "runtime_s": 1.0, "iterations": 10}
    return {"texture": tex, "defocus_mm": -1.0, "noise": 0.5, "seed": 1, "SITIE": dict(m), "pixel-wise": dict(m), "SIPRAD": dict(m)}


def test_grid_parts_merge_and_are_not_rerun(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"grid": [_row("stripes", 0.91)]}))
    b.write_text(json.dumps({"grid": [_row("bubbles", 0.87)]}))
    done = bench.merge_raw([a, b])
    assert [r["texture"] for r in done["grid"]] == ["stripes", "bubbles"]
    monkeypatch.setattr(bench, "bench_grid", lambda *a, **k: (_ for _ in ()).throw(AssertionError("grid re-run")))
    text = bench.markdown(only=("grid",), device="cpu", done=done)
    assert "#### stripes" in text and "#### bubbles" in text
    assert "0.910 / 0.910" in text and "0.870 / 0.870" in text  # the numbers of each file, not recomputed
    assert "Assembled from earlier partial runs" in text


def test_cli_refuses_unknown_part_or_texture(capsys):
    assert bench.main(["--only", "grid,nosuch", "--out", "/nonexistent/x.md"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert bench.main(["--only", "grid", "--textures", "vortex", "--out", "/nonexistent/x.md"]) == 2
    assert "vortex" in capsys.readouterr().err


def test_cells_run_again_replace_their_rows(tmp_path):
    first, again = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"grid": [_row("stripes", 0.91), {**_row("bubbles", 0.5), "defocus_mm": -4.0}]}))
    again.write_text(json.dumps({"grid": [{**_row("bubbles", 0.95), "defocus_mm": -4}]}))
    rows = bench.merge_raw([first, again])["grid"]
    assert len(rows) == 2 and [r["texture"] for r in rows] == ["stripes", "bubbles"]
    assert rows[1]["SIPRAD"]["phase_acc"] == 0.95  # the later run of the same cell


def test_cli_cells_must_be_cells(capsys):
    assert bench.main(["--only", "grid", "--cells", "[[1, 2]]", "--out", "/nonexistent/x.md"]) == 2
    assert "--cells" in capsys.readouterr().err
    assert bench.main(["--only", "grid", "--cells", '[["vortex", -1, 0.1, 1]]', "--out", "/nonexistent/x.md"]) == 2
    assert "unknown texture" in capsys.readouterr().err
