"""The `normlab` command itself: --version, the help text, the one-line error handler, missing extras,
and the `notebooks` sub-command's arguments."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import normlab
from normlab import cli
from normlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def normlab_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "normlab", *args], capture_output=True, text=True, timeout=300, **kw)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"normlab {normlab.__version__} (torch ") and "Python 3." in out


def test_help_is_for_users_and_lists_every_command():
    r = normlab_cmd("--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "only dispatches" not in text
    assert "Batch" in text and "LayerNorm" in text  # says what the project is
    for name in cli.COMMANDS:
        assert f"\n    {name} " in text or f"\n    {name}\n" in text, name
    assert "common commands:" in text and "normlab train --config" in text and "snakemake --cores" in text
    assert "'normlab[analysis]'" in text


def test_top_level_help_imports_no_command_module():
    # `normlab --help` must answer at once, without torch or the analysis stack.
    code = "import sys; from normlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n" \
           "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'normlab.train.engine') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "common commands:" in capsys.readouterr().out


def test_a_bad_run_config_is_one_line_exit_2_no_traceback(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("task: {family: lm}\nmodel: {nrom: ln}\n")
    r = normlab_cmd("train", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("normlab train: ") and "model.nrom" in lines[0]
    assert "Traceback" not in r.stderr and not lines[0].endswith('"')


def test_a_config_that_is_not_yaml_mapping_is_one_line(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("- just\n- a list\n")
    r = normlab_cmd("train", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_dataset_has_no_stray_quotes(capsys, tmp_path):
    assert main(["fetch", "nope", "--cache", str(tmp_path)]) == 1  # fetch keeps its exit status
    err = capsys.readouterr().err.strip()
    assert err.startswith("normlab fetch: unknown dataset 'nope'; known: "), err
    assert '"' not in err and len(err.splitlines()) == 1


def test_unknown_dataset_error_is_still_a_key_error():
    from normlab.data import DataError, registry

    with pytest.raises(KeyError) as err:
        registry.get("nope")
    assert isinstance(err.value, DataError)
    assert str(err.value).startswith("unknown dataset 'nope'")  # str(), not repr() of the message


def test_not_a_finished_run_ends_in_the_handler(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    assert main(["probe", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("normlab probe: ") and len(err.splitlines()) == 1


def test_other_exceptions_are_not_swallowed(monkeypatch):
    # A bug is a traceback, not a one-line "error": only normlab's own classes are caught.
    from normlab.train import cli as train_cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train_cli, "run", boom)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--config", "x.yaml", "--out", "y"])


def test_every_listed_error_class_exists():
    for module, name in cli.ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Exception), (module, name)
    for name, command in cli.COMMANDS.items():
        assert importlib.util.find_spec(command.module) is not None, name


def test_missing_extra_is_one_line_naming_the_install(monkeypatch, capsys):
    # As in a venv with only the core: the analysis module's `import pandas` fails.
    real_import = importlib.import_module

    def import_module(name, *args):
        if name == "normlab.analysis.stats":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return real_import(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)
    assert main(["stats", "--help"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("normlab stats: needs pandas") and "pip install 'normlab[analysis]'" in err
    assert "'normlab[workflow]'" in err


def test_extras_table_agrees_with_pyproject():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    def module_of(requirement: str) -> str:
        return re.split(r"[<>=\[]", requirement)[0].replace("-", "_")

    named = {module_of(req) for reqs in extras.values() for req in reqs}
    for module, extra in cli.EXTRAS.items():
        assert extra in extras, (module, extra)
        direct = [r for r in extras[extra] if module_of(r) == module]
        # a module named after a distribution is listed in its extra; the others come with one of them
        assert direct or module not in named, (module, extra)


def test_notebooks_subcommand_passes_its_arguments(monkeypatch, capsys):
    from normlab.analysis import notebooks

    calls = []
    monkeypatch.setattr(notebooks, "execute_notebook",
                        lambda name, parameters, **kw: calls.append((name, parameters, kw)) or f"ran {name}")
    assert main(["notebooks", "tid_dynamics", "performance", "--tidy", "T", "--figures", "F", "--out", "O",
                 "--timeout", "7"]) == 0
    assert [c[0] for c in calls] == ["tid_dynamics", "performance"]
    name, parameters, kw = calls[0]
    # what is not given is the notebook's own default (the scale study's: its committed folders)
    assert parameters == {"tidy_dir": "T", "figures_dir": "F"}
    assert kw == {"out_dir": "O", "notebooks_dir": None, "timeout": 7, "html": False}
    assert capsys.readouterr().out.split() == ["ran", "tid_dynamics", "ran", "performance"]
    assert main(["notebooks", "scale_study", "--html"]) == 0  # what the workflow's rule asks for the report
    assert calls[-1][2]["html"] is True


def test_notebooks_subcommand_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["notebooks"])
    assert exit_.value.code == 2
    assert "usage: normlab notebooks" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["notebooks", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: normlab notebooks") and "--tidy" in out


def test_notebooks_subcommand_failure_keeps_its_exit_status(capsys, tmp_path):
    assert main(["notebooks", str(tmp_path / "absent.py"), "--out", str(tmp_path / "o")]) == 1
    assert "absent.py" in capsys.readouterr().err
