"""`python -m vggt_mv inspect`: the report people read in a terminal, and exit codes CI can rely on."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors

ROOT = Path(__file__).resolve().parents[2]


def inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vggt_mv", "inspect", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse")
    return (write_sparse_safetensors(folder / "vggt.safetensors", reference_layout("vggt-1b")),
            write_sparse_safetensors(folder / "pi3.safetensors", reference_layout("pi3")))


def test_full_size_dry_run_prints_tree_ranges_mismatch_and_unexpected(full_size, tmp_path):
    checkpoint, pi3 = full_size
    result = inspect("--checkpoint", checkpoint, "--pi3", pi3, "--dry-run", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    counts = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ") and
              line.split()[0] in ("checkpoint_loaded", "pi3_loaded", "overridden", "mismatched", "random")}
    assert counts == {"checkpoint_loaded": "1149", "pi3_loaded": "648", "overridden": "648", "mismatched": "1",
                      "random": "6"}
    assert "aggregator.frame_blocks.{0..17}" in out and "aggregator.frame_blocks.{18..23}" in out
    assert "model [1, 2, 4, 1024] vs source [1, 1, 5, 1024]" in out
    assert "encoder.blocks.* (336)" in out
    assert "decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["pi3_loaded"] == 648 and data["dry_run"] is True


def test_full_size_dry_run_with_pi3x_names_its_own_modules_once(full_size, tmp_path, capsys):
    checkpoint, _ = full_size
    pi3x = write_sparse_safetensors(tmp_path / "pi3x.safetensors", reference_layout("pi3x"))
    code, out, err = run_in_process(capsys, "--checkpoint", checkpoint, "--pi3", pi3x, "--pi3-rules", "pi3x-decoder",
                                    "--dry-run")
    assert code == 0, err
    counts = dict(re.findall(r"^  (\w+(?: \(\w+\))?) +(\d+) tensors", out, re.MULTILINE))
    assert counts == {"checkpoint_loaded": "1149", "pi3_loaded": "648", "derived": "0", "random": "6",
                      "overridden": "648", "mismatched": "1", "unexpected (checkpoint)": "0",
                      "unexpected (pi3)": "557"}
    anomalies = out.split("ANOMALIES:", 1)[1]
    assert anomalies.count("  ! ") == 1 and "Pi3X modules with no counterpart in VGGT_MV" in anomalies
    assert "pose_inject_blk" not in out.split("ANOMALIES:", 1)[0].split("Unexpected keys", 1)[1], \
        "Pi3X's own modules are the anomaly, not unexpected keys"
    by_source = run_in_process(capsys, "--checkpoint", checkpoint, "--source", f"pi3x={pi3x}@pi3x-decoder+encoder",
                               "--dry-run")[1]
    assert re.search(r"^  pi3x_loaded +991 tensors", by_source, re.MULTILINE)


def test_help_offers_every_built_in_rule_set():
    from vggt_mv.weights.rule_files import BUILTIN_RULE_SETS
    from vggt_mv.weights.rules import PI3_RULE_SETS

    text = " ".join(inspect("--help").stdout.split())
    assert all(name in text for name in BUILTIN_RULE_SETS + PI3_RULE_SETS)


def test_fail_under_catches_a_submodule_checkpoint(tmp_path):
    aggregator_only = {k.removeprefix("aggregator."): v for k, v in tiny_state().items() if k.startswith("aggregator.")}
    path = write_safetensors(tmp_path / "agg.safetensors", aggregator_only)
    result = inspect("--checkpoint", path, "--preset", "tiny", "--fail-under", "0.9")
    assert result.returncode == 1
    assert "ANOMALIES" in result.stdout and "prefixed with 'aggregator.'" in result.stdout
    assert "FAIL" in result.stderr


def test_fail_under_passes_a_whole_model_checkpoint_and_expect_random_excludes_modules(tmp_path):
    state = tiny_state()
    whole = write_safetensors(tmp_path / "whole.safetensors", state)
    assert inspect("--checkpoint", whole, "--preset", "tiny", "--fail-under", "0.99").returncode == 0
    no_tracks = write_safetensors(tmp_path / "no_tracks.safetensors",
                                  {k: v for k, v in state.items() if not k.startswith("track_head.")})
    assert inspect("--checkpoint", no_tracks, "--preset", "tiny", "--fail-under", "0.99").returncode == 1
    assert inspect("--checkpoint", no_tracks, "--preset", "tiny", "--fail-under", "0.99",
                   "--expect-random", "^track_head\\.").returncode == 0


def test_bad_source_is_one_line_and_exit_code_two(tmp_path):
    result = inspect("--checkpoint", tmp_path / "missing.safetensors", "--preset", "tiny")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def run_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """main() without a subprocess, for the cheaper cases."""
    from vggt_mv.cli import main

    code = main(["inspect", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_ddp_checkpoint_loads_fully_and_the_stripped_prefix_is_reported(tmp_path, capsys):
    path = tmp_path / "ddp.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in tiny_state().items()}}, path)
    code, out, _ = run_in_process(capsys, "--checkpoint", path, "--preset", "tiny", "--fail-under", "0.9")
    assert code == 0
    assert "note: stripped the 'module.' prefix" in out and "model.module.state_dict()" in out


def test_half_precision_sources_say_so(tmp_path, capsys):
    state = {k: v.half() for k, v in tiny_state().items()}
    path = write_safetensors(tmp_path / "half.safetensors", state)
    code, out, _ = run_in_process(capsys, "--checkpoint", path, "--preset", "tiny", "--dry-run")
    assert code == 0 and f"note: {len(state)} tensors stored as float16, loaded as float32" in out


@pytest.mark.parametrize("flags, phrase", [
    (["--fail-under", "90"], "between 0 and 1"),
    (["--expect-random", "track_head.("], "bad --expect-random pattern"),
    (["--json", "/nonexistent-dir/report.json"], "cannot write the JSON report"),
    ([], "give --checkpoint and/or --pi3"),
    (["--pi3-rules", "pi4-decoder"], "--pi3-rules 'pi4-decoder': choose one of decoder, decoder+encoder, "
                                     "pi3x-decoder, pi3x-decoder+encoder"),
])
def test_user_errors_are_one_line_with_exit_code_two(tmp_path, capsys, flags, phrase):
    source = [] if not flags else ["--checkpoint", write_safetensors(tmp_path / "t.safetensors", tiny_state())]
    code, _, err = run_in_process(capsys, *source, "--preset", "tiny", "--dry-run", *flags)
    assert code == 2 and phrase in err and len(err.strip().splitlines()) == 1


def test_a_checkpoint_of_another_model_fails_any_threshold(tmp_path, capsys):
    other = write_safetensors(tmp_path / "resnet.safetensors",
                              {f"layer{i}.conv.weight": torch.ones(2, 2) for i in range(12)})
    code, out, err = run_in_process(capsys, "--checkpoint", other, "--preset", "tiny", "--fail-under", "0.01")
    assert code == 1 and "loaded no tensor" in out and "FAIL: 0.0% of parameters loaded" in err


def hostile_sources(tmp_path) -> dict[str, tuple[str, str]]:
    """A few sources that once ended `inspect` with a traceback, and the phrase the one error line must have."""
    state = tiny_state()
    deep = tmp_path / "deep.safetensors"
    header = b"[" * 100_000 + b"]" * 100_000
    deep.write_bytes(len(header).to_bytes(8, "little") + header)
    (tmp_path / "empty.pt").write_bytes(b"")
    complex_pt = tmp_path / "complex.pt"
    torch.save({key: value.to(torch.complex64) for key, value in state.items()}, complex_pt)
    nan = write_safetensors(tmp_path / "nan.safetensors",
                            {**state, "aggregator.camera_token": torch.full((1, 2, 1, 64), float("nan"))})
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {"w": "../../../etc/passwd"}}')
    return {"nul": ("model\x00.pt", "contains control characters"),
            "deep": (str(deep), "nested too deeply"),
            "empty": (str(tmp_path / "empty.pt"), "empty file"),
            "complex": (str(complex_pt), "has dtype complex64; weights must be floating point"),
            "nan": (str(nan), "1 tensor holds NaN or Inf values"),
            "escaping index": (str(sharded), "outside the index's folder")}


def test_hostile_sources_are_one_line_with_exit_code_two_and_no_json_written(tmp_path, capsys):
    for name, (source, phrase) in hostile_sources(tmp_path).items():
        report = tmp_path / f"{name}.json"
        code, out, err = run_in_process(capsys, "--checkpoint", source, "--preset", "tiny", "--json", report)
        assert code == 2 and out == "", name
        assert err.startswith("error: ") and phrase in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not report.exists(), name
    assert sorted(p.name for p in tmp_path.glob("*.part")) == []


def test_a_dtype_mismatch_is_listed_by_a_dry_run(tmp_path, capsys):
    state = tiny_state()
    path = write_safetensors(tmp_path / "int8.safetensors", {**state, "aggregator.camera_token":
                                                             state["aggregator.camera_token"].to(torch.int8)})
    code, out, _ = run_in_process(capsys, "--checkpoint", path, "--preset", "tiny", "--dry-run")
    assert code == 0
    assert "aggregator.camera_token <- checkpoint:aggregator.camera_token: model dtype float32 vs source dtype int8" \
        in out
    assert "a real load refuses this source" in out


USER_MODEL = '''
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(4))
        self.head = nn.Linear(8, 2)


def build():
    return Encoder()
'''

USER_RULES = '''
name = "from-legacy"
[[rules]]
name = "blocks"
from = "net.block{n}.*"
to = "layers.{n - 1}.*"
'''


def test_a_user_defined_model_is_inspected_through_model_with_a_rules_file(tmp_path, capsys, monkeypatch):
    """The researcher's own nn.Module and their old checkpoint layout (blocks numbered from 1, under `net.`)."""
    (tmp_path / "my_model.py").write_text(USER_MODEL)
    rules = tmp_path / "legacy.toml"
    rules.write_text(USER_RULES)
    legacy = {f"net.block{n}.{name}": torch.randn(8, 8) if name == "weight" else torch.randn(8)
              for n in range(1, 5) for name in ("weight", "bias")}
    checkpoint = write_safetensors(tmp_path / "legacy.safetensors", legacy)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = run_in_process(capsys, "--model", "my_model:build", "--source", f"legacy={checkpoint}@{rules}",
                                    "--dry-run", "--fail-under", "0.5", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "legacy_loaded                 8 tensors" in out and "random                        2 tensors" in out
    assert re.search(r"legacy:blocks +8  net\.block\{n\}\.\* -> layers\.\{n - 1\}\.\*", out)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["sources"]["legacy"]["rules"] == "from-legacy"
    assert {t["key"]: t["status"] for t in data["tensors"]}["layers.3.bias"] == "legacy"
    code, _, err = run_in_process(capsys, "--model", str(tmp_path / "my_model.py") + ":build", "--source",
                                  f"legacy={checkpoint}@{rules}", "--dry-run", "--fail-under", "0.9",
                                  "--expect-random", "^head\\.")
    assert code == 0, err


@pytest.mark.parametrize("flags, phrase", [
    (["--model", "no_such_module_xyz:build"], "cannot import no_such_module_xyz"),
    (["--model", "json:dumps"], "the factory raised TypeError"),
    (["--model", "json:loads_nothing"], "has no callable 'loads_nothing'"),
    (["--model", "json"], "write MODULE:FACTORY"),
    (["--model", "tests.cli.test_inspect_cli:not_a_module"], "not a torch.nn.Module"),
    (["--source", "no-equals-sign"], "NAME=PATH"),
    (["--source", "random=x.safetensors"], "status of its own"),
    (["--source", "x=y.safetensors@everything.toml"], "unknown rule set"),
])
def test_bad_models_and_sources_are_one_line_with_exit_code_two(tmp_path, capsys, flags, phrase):
    source = ["--source", f"s={write_safetensors(tmp_path / 't.safetensors', tiny_state())}"]
    code, out, err = run_in_process(capsys, *(flags if "--source" in flags else source + flags), "--dry-run")
    assert code == 2 and phrase in err and len(err.strip().splitlines()) == 1, err
    assert out == ""


def not_a_module():
    return 42


def test_a_tiny_checkpoint_against_vggt_1b_says_tiny_and_collapses_the_mismatches(tmp_path, capsys):
    path = write_safetensors(tmp_path / "tiny.safetensors", tiny_state())
    code, out, _ = run_in_process(capsys, "--checkpoint", path, "--dry-run")
    assert code == 0
    assert "this is the `tiny` preset" in out and "--preset tiny" in out
    assert len(out.splitlines()) < 150, "it was 713 lines"
    assert out.count("ANOMALIES") == 1 and out.count("  ! ") == 1


def test_fail_on_suspect_catches_a_checkpoint_saved_before_anything_trained(tmp_path, capsys):
    fresh = write_safetensors(tmp_path / "fresh.safetensors", tiny_state())  # a model saved right after its init
    code, out, err = run_in_process(capsys, "--checkpoint", fresh, "--preset", "tiny", "--fail-on-suspect")
    suspects = next(line for line in out.splitlines() if line.strip().startswith("suspect_untrained"))
    assert code == 1 and int(suspects.split()[1]) > 0 and "look untrained though loaded from checkpoint" in out
    assert "loaded tensors look untrained (--fail-on-suspect)" in err
    code, out, _ = run_in_process(capsys, "--checkpoint", fresh, "--preset", "tiny")
    assert code == 0 and "Look untrained" in out, "without the flag suspects are reported, not fatal"
    code, _, err = run_in_process(capsys, "--checkpoint", fresh, "--preset", "tiny", "--dry-run", "--fail-on-suspect")
    assert code == 2 and "a dry run reads headers only" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def compared_pair(tmp_path):
    a = tiny_state(seed=3)
    b = {k: (v * 1.5 if k.startswith("camera_head.") else v) for k, v in a.items() if k != "point_head.norm.bias"}
    b["extra.weight"] = torch.ones(3)
    return write_safetensors(tmp_path / "a.safetensors", a), write_safetensors(tmp_path / "b.safetensors", b)


def test_compare_prints_the_change_per_module_and_writes_the_json(compared_pair, tmp_path, capsys):
    a, b = compared_pair
    code, out, err = run_in_process(capsys, "--compare", a, b, "--json", tmp_path / "c.json")
    assert code == 0, err
    assert out.startswith("COMPARE a with b") and f"a: {a}" in out
    line = {row.split()[0]: row for row in out.splitlines() if row and not row.startswith(" ")}
    assert "3.33e-01" in line["camera_head"], "||a - 1.5a|| / ||1.5a|| = 1/3"
    assert "NEVER TRAINED" in line["aggregator"] and "NEVER TRAINED" in line["track_head"], "a fresh init in both"
    assert "still at init in both (never trained): 4 modules (marked NEVER TRAINED below)" in out
    assert "Still at init in both (never trained), by module range:\n  aggregator\n  depth_head\n  point_head\n" \
           "  track_head\n" in out
    assert "Only in a, by prefix:" in out and "point_head.norm" in out and "Only in b" in out
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["schema_version"] == 2 and data["only_a"] == ["point_head.norm.bias"]
    assert data["only_b"] == ["extra.weight"] and data["modules"]["aggregator"]["unchanged"] is True
    assert data["modules"]["aggregator"]["unchanged_kind"] == "never_trained"
    assert data["modules"]["camera_head"]["relative_change"] == pytest.approx(1 / 3)
    assert "JSON comparison written to" in out and not list(tmp_path.glob("*.part"))


def test_compare_says_frozen_for_a_fine_tune_that_kept_its_trained_aggregator(tmp_path, capsys):
    generator = torch.Generator().manual_seed(11)
    trained = {k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in tiny_state(seed=3).items()}
    tuned = {k: (v if k.startswith("aggregator.") else v * 1.5) for k, v in trained.items()}
    a, b = write_safetensors(tmp_path / "a.safetensors", tuned), write_safetensors(tmp_path / "b.safetensors", trained)
    code, out, err = run_in_process(capsys, "--compare", a, b, "--depth", "1", "--json", tmp_path / "c.json")
    assert code == 0, err
    tree = out.split("Modules (relative change):\n")[1].split("\n\n")[0]
    line = {row.split()[0]: row for row in tree.splitlines()}
    assert "FROZEN" in line["aggregator"] and "5.00e-01" in line["camera_head"], "||1.5b - b|| / ||b||"
    assert "frozen (equal, trained): 1 module (marked FROZEN below)" in out and "NEVER TRAINED" not in out
    assert json.loads((tmp_path / "c.json").read_text())["modules"]["aggregator"]["unchanged_kind"] == "frozen"


def test_compare_honours_depth(compared_pair, capsys):
    a, b = compared_pair
    shallow = run_in_process(capsys, "--compare", a, b, "--depth", "1")[1]
    deep = run_in_process(capsys, "--compare", a, b, "--depth", "3")[1]
    assert "  camera_head.trunk" not in shallow and "  camera_head.trunk" in deep


@pytest.mark.parametrize("extra, phrase", [
    (["--preset", "tiny"], "it takes none of --preset"),
    (["--checkpoint", "x.safetensors"], "it takes none of --checkpoint"),
    (["--dry-run", "--fail-on-suspect"], "--dry-run, --fail-on-suspect"),
    (["--json", "/nonexistent-dir/c.json"], "cannot write the JSON report"),
])
def test_compare_refuses_load_flags_in_one_line(compared_pair, capsys, extra, phrase):
    code, out, err = run_in_process(capsys, "--compare", *compared_pair, *extra)
    assert code == 2 and out == "" and phrase in err and len(err.strip().splitlines()) == 1


def test_compare_with_a_missing_or_hostile_side_is_one_line_with_exit_code_two(compared_pair, tmp_path, capsys):
    a, _ = compared_pair
    cases = {name: source for name, (source, _) in hostile_sources(tmp_path).items() if name in
             ("nul", "deep", "empty", "escaping index")}
    cases["missing"] = str(tmp_path / "missing.safetensors")
    for name, source in cases.items():
        for pair in ((a, source), (source, a)):
            out_json = tmp_path / f"{name}.json"
            code, out, err = run_in_process(capsys, "--compare", *pair, "--json", out_json)
            assert code == 2 and out == "", name
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, (name, err)
            assert "Traceback" not in err and not out_json.exists(), name
