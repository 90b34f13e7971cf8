"""Code hashes from the import graph: what a job can import, and only that, changes its hash."""

import re
import shutil
from pathlib import Path

import pytest

from gnode import codegraph

REPO = Path(__file__).resolve().parents[2]


def _names(entry):
    return {codegraph.module_name(p) for p in codegraph.reachable_files(entry)}


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throw-away ``gnode`` package: a imports b inside a function, b imports .c relatively,
    d imports e only for typing, f is imported by nobody."""
    root = tmp_path / "gnode"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def run():\n    from gnode.sub import b\n    return b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from . import c\nfrom .c import VALUE\n",
        "sub/c.py": "VALUE = 1\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gnode import e\nelse:\n    import gnode.f\n",
        "e.py": "",
        "f.py": "",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    monkeypatch.setattr(codegraph, "ROOT", root)
    script = tmp_path / "job.py"
    script.write_text("from gnode import a\na.run()\n")
    return root, script


def test_lazy_and_relative_imports_are_followed_with_their_packages(package):
    _, script = package
    assert _names(script) == {"gnode", "gnode.a", "gnode.sub", "gnode.sub.b", "gnode.sub.c"}


def test_typing_only_imports_are_left_out_and_their_else_kept(package):
    assert _names("gnode.d") == {"gnode", "gnode.d", "gnode.f"}


def test_the_hash_changes_with_a_reached_module_only(package):
    root, script = package
    before = codegraph.code_hash(script)
    (root / "f.py").write_text("# an edit of a module the job never imports\n")
    assert codegraph.code_hash(script) == before
    (root / "sub" / "c.py").write_text("VALUE = 2\n")  # reached through a lazy, then a relative import
    assert codegraph.code_hash(script) != before


def test_the_real_jobs_import_graph():
    scripts = REPO / "workflow" / "scripts"
    train = _names(scripts / "train_flipflop.py")
    # the Euler scan is imported lazily by the models: a hand-kept list once missed it
    assert {"gnode.scan", "gnode.models", "gnode.training", "gnode.config", "gnode.runtime"} <= train
    assert "gnode.claims" not in train and not any(n.startswith("gnode.plotting") for n in train)
    # the data job does not depend on the models (the config is imported for typing only; the
    # settings class is in gnode.strict)
    assert _names(scripts / "prepare_flipflop_data.py") == {
        "gnode", "gnode.io", "gnode.jobs", "gnode.runtime", "gnode.strict", "gnode.studies",
        "gnode.studies.flipflop_data", "gnode.tasks", "gnode.tasks.flipflop",
    }
    # a figure job imports its plotting module, not the trainer
    assert "gnode.training" not in _names(scripts / "plot_flipflop.py")
    # every script imports gnode.jobs, which names every study: only its own job's part counts
    units = codegraph.reachable(scripts / "plot_flipflop.py")
    assert units[codegraph.ROOT / "jobs.py"] == ["_concat", "_figure_options", "job", "plot_flipflop"]
    assert codegraph.reachable(scripts / "train_flipflop.py")[codegraph.ROOT / "jobs.py"] == ["job", "train_flipflop"]


@pytest.fixture
def jobs_package(package, monkeypatch):
    """The throw-away package with a per-function module ``gnode.jobs``: job ``one`` runs
    ``gnode.a`` (through a helper), job ``two`` runs ``gnode.f``."""
    root, script = package
    (root / "jobs.py").write_text(
        "REGISTRY = {}\n\n\n"
        "def _helper():\n    from gnode import a\n    return a\n\n\n"
        "def one():\n    return _helper().run()\n\n\n"
        "def two():\n    import gnode.f\n    return gnode.f\n"
    )
    monkeypatch.setattr(codegraph, "PER_FUNCTION", frozenset({"gnode.jobs"}))
    script.write_text("from gnode import jobs\n\njobs.one()\n")
    return root, script


def test_a_per_function_module_counts_only_the_called_job(jobs_package):
    root, script = jobs_package
    assert _names(script) == {"gnode", "gnode.jobs", "gnode.a", "gnode.sub", "gnode.sub.b", "gnode.sub.c"}
    assert codegraph.reachable(script)[root / "jobs.py"] == ["_helper", "one"]
    # the same parts reached from the entry ``module:function`` give the same hash
    assert codegraph.code_hash(script) == codegraph.code_hash("gnode.jobs:one")
    before = codegraph.code_hash(script)
    jobs = root / "jobs.py"
    jobs.write_text(jobs.read_text().replace("return gnode.f", "return gnode.f  # edited"))  # the other job
    assert codegraph.code_hash(script) == before
    for old, new in [("return a\n", "return a  # edited\n"),  # the helper the job calls
                     ("REGISTRY = {}", "REGISTRY = {1: 2}")]:  # top-level code runs for every job
        jobs.write_text(jobs.read_text().replace(old, new))
        assert codegraph.code_hash(script) != before
        before = codegraph.code_hash(script)


def test_a_per_function_module_used_as_a_whole_counts_whole(jobs_package):
    root, script = jobs_package
    script.write_text("from gnode import jobs\n\nrun = getattr(jobs, 'two')\nrun()\n")
    assert codegraph.reachable(script)[root / "jobs.py"] is None
    assert {"gnode.a", "gnode.f"} <= _names(script)
    script.write_text("from gnode.jobs import two\n\ntwo()\n")
    assert codegraph.reachable(script)[root / "jobs.py"] == ["two"] and "gnode.a" not in _names(script)


def test_every_rule_that_runs_a_script_carries_that_scripts_hash():
    checked = 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text())[1:]:
            script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', block)
            if script:
                assert f'code=CODE["{script.group(1)}"]' in block, f"{smk.name}: {block.split(':')[0]}"
                checked += 1
    assert checked >= 18


def test_public_names_of_the_package_lead_to_their_module(package):
    root, script = package
    (root / "__init__.py").write_text('_LAZY = {"VALUE": "gnode.sub.c"}\n')
    script.write_text("from gnode import VALUE\n")
    assert _names(script) == {"gnode", "gnode.sub", "gnode.sub.c"}


def test_the_public_api_resolves_every_name():
    import gnode

    assert set(gnode.__all__) == {"__version__", *gnode._LAZY}
    for name, module in gnode._LAZY.items():
        value = getattr(gnode, name)
        assert value.__name__ == module if module.endswith("." + name) else value.__module__ == module, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gnode.nope  # noqa: B018


def test_editing_one_job_function_changes_only_that_jobs_hash(tmp_path, monkeypatch):
    # a copy of the real package: every script imports gnode.jobs, yet only its own job counts
    shutil.copytree(codegraph.ROOT, tmp_path / "gnode", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codegraph, "ROOT", tmp_path / "gnode")
    scripts = REPO / "workflow" / "scripts"
    before = codegraph.script_hashes(scripts)
    jobs = tmp_path / "gnode" / "jobs.py"
    text = jobs.read_text()
    edited = text.replace("plots.final_loss(members_table, out_final_loss, **opts)",
                          "plots.final_loss(members_table, out_final_loss, **opts)  # an edit")
    assert edited != text
    jobs.write_text(edited)
    after = codegraph.script_hashes(scripts)
    assert {s for s in before if before[s] != after[s]} == {"plot_trainability"}
    # a helper of the figure jobs: every job that calls it
    jobs.write_text(edited.replace('"dpi": typed.dpi}', '"dpi": typed.dpi}  # an edit'))
    changed = {s for s, h in codegraph.script_hashes(scripts).items() if h != after[s]}
    assert changed == {"plot_flipflop", "plot_flipflop_attractors", "plot_flipflop_overview", "plot_realworld",
                       "plot_trainability"}
