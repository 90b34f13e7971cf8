"""The report's reStructuredText renders without a docutils warning or error.

Snakemake (``snakemake --report``) reads the front page named by the Snakefile's ``report:``
directive and every ``caption=`` of a ``report(...)`` output, appends its own link targets,
renders the text with Jinja2 (``snakemake.config``, ``snakemake.wildcards``, ... of the job) and
publishes it with docutils, which prints each warning ("System Message: WARNING/2") into the
page. Here each file goes through the same steps, with the real configurations (default and
paper profile) and every value of the wildcards the configuration gives, and any docutils
message of level WARNING (2) or above fails the test.
"""

import ast
import functools
import inspect
import io
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest

# Snakemake's report module registers its own directives (embeddedimage, embeddedfigure) in
# docutils on import; captions may use them, so they must be known here too.
import snakemake.report as smk_report
from docutils.core import publish_parts
from docutils.writers import get_writer_class
from snakemake.common.configfile import load_configfile
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Snakemake, Wildcards
from snakemake.utils import update_config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "workflow" / "rules"
REPORT_DIR = ROOT / "workflow" / "report"
PROFILES = {"default": ["config/config.yaml"], "paper": ["config/config.yaml", "config/paper.yaml"]}
# where the configuration lists the values of each wildcard of a report output
WILDCARD_VALUES = {"experiment": ("flipflop", "experiments"), "task": ("realworld", "tasks")}


def _report_outputs() -> list[dict]:
    """Every ``report(...)`` call of the rule files: path, caption (absolute), category, rule."""
    out = []
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"\breport\(", text):
            depth, end = 0, m.end() - 1
            for end in range(m.end() - 1, len(text)):  # the matching parenthesis
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            call = ast.parse(text[m.start() : end + 1], mode="eval").body
            kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            rule = re.findall(r"^rule (\w+):", text[: m.start()], flags=re.M)[-1]
            caption = (smk.parent / kw["caption"]).resolve() if "caption" in kw else None
            out.append(
                dict(path=ast.literal_eval(call.args[0]), caption=caption, category=kw.get("category"), rule=rule)
            )
    return out


OUTPUTS = _report_outputs()
CAPTIONS = sorted({o["caption"] for o in OUTPUTS if o["caption"] is not None})
FRONT_PAGE = ROOT / re.search(r'^report:\s*"([^"]+)"', (ROOT / "Snakefile").read_text(), flags=re.M).group(1)


@functools.cache
def _config(profile: str) -> dict:
    """The configuration Snakemake hands to the templates as ``snakemake.config``: the files
    overlaid in order by Snakemake's own loader (``configfile:``, then ``--configfile``)."""
    cfg: dict = {}
    for p in PROFILES[profile]:
        update_config(cfg, load_configfile(str(ROOT / p)))
    return cfg


@functools.cache
def _rst_links() -> str:
    """Snakemake's link targets appended to every caption and the front page, read from the
    installed Snakemake (``auto_report``) so that a change there is seen here."""
    src = inspect.getsource(smk_report.auto_report)
    m = re.search(r'rst_links = textwrap\.dedent\(\s*"""(.*?)"""', src, flags=re.S)
    assert m, "the rst_links template of snakemake.report.auto_report has moved; update this test"
    return textwrap.dedent(m.group(1))


@functools.cache
def _jinja_context(profile: str) -> tuple[dict, list]:
    """``categories`` and ``files`` as Snakemake builds them: one entry per report output, the
    wildcards expanded with the profile's values, files unique by their name (target)."""
    config = _config(profile)
    categories, files, seen = {}, [], set()
    for o in OUTPUTS:
        for wc in _wildcard_sets(o["path"], config):
            path = o["path"].format(**wc)
            categories.setdefault(smk_report.Category(o["category"]), {})
            target = Path(path).name
            if target not in seen:
                seen.add(target)
                files.append(SimpleNamespace(target=target, path=path))
    return categories, files


def _wildcard_sets(path: str, config: dict) -> list[dict]:
    """Every combination of wildcard values of ``path`` that the configuration defines."""
    combos = [{}]
    for name in re.findall(r"{(\w+)}", path):
        assert name in WILDCARD_VALUES, f"wildcard {{{name}}} of {path}: add where its values live to WILDCARD_VALUES"
        section, key = WILDCARD_VALUES[name]
        combos = [{**c, name: v} for c in combos for v in config[section][key]]
    return combos


def rst_problems(template: str, source: str, part: str = "body", **context) -> list[str]:
    """Render ``template`` + Snakemake's links with Jinja2 and ``context``, publish it with
    docutils as Snakemake does, and return every message of level WARNING or above (and every
    Jinja2 error: an undefined variable is an error here, not the empty text Snakemake prints)."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    try:
        text = env.from_string(template + _rst_links()).render(**context)
    except jinja2.TemplateError as err:
        return [f"{source}: Jinja2: {type(err).__name__}: {err}"]
    return list(_docutils_problems(text, source, part))


@functools.cache  # a caption without Jinja2 syntax reads the same for every wildcard value
def _docutils_problems(text: str, source: str, part: str) -> tuple[str, ...]:
    stream = io.StringIO()
    # report_level 2: warnings and above are reported (Snakemake's default too); halt_level 5:
    # nothing stops the parse, so that every message is collected
    html = publish_parts(
        text,
        source_path=source,
        writer=get_writer_class("html")(),
        settings_overrides={"warning_stream": stream, "report_level": 2, "halt_level": 5},
    )[part]
    problems = [line for line in stream.getvalue().splitlines() if line.strip()]
    if "system-message" in html and not problems:
        problems.append(f"{source}: the HTML holds a docutils system message")
    return tuple(problems)


def test_every_report_file_is_found_and_checked():
    """The parse above sees every ``report(`` of the rules, each caption exists, and every .rst
    under workflow/report is the front page or a caption (none escapes the checks below)."""
    calls = sum(len(re.findall(r"\breport\(", p.read_text())) for p in RULES.glob("*.smk"))
    assert len(OUTPUTS) == calls >= 20
    assert all(o["caption"] is not None and o["category"] for o in OUTPUTS)
    assert all(c.is_file() for c in CAPTIONS), [str(c) for c in CAPTIONS if not c.is_file()]
    assert FRONT_PAGE.is_file()
    assert sorted(REPORT_DIR.glob("*.rst")) == sorted([*CAPTIONS, FRONT_PAGE])


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_front_page_renders_cleanly(profile):
    config = _config(profile)
    categories, files = _jinja_context(profile)
    problems = rst_problems(
        FRONT_PAGE.read_text(),
        str(FRONT_PAGE.relative_to(ROOT)),
        part="html_body",  # Snakemake keeps the title with the body
        snakemake=SimpleNamespace(config=config),
        categories=categories,
        files=files,
    )
    assert problems == []


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("caption", CAPTIONS, ids=[c.name for c in CAPTIONS])
def test_every_caption_renders_cleanly(caption, profile):
    config = _config(profile)
    categories, files = _jinja_context(profile)
    problems, rendered = [], 0
    for o in (o for o in OUTPUTS if o["caption"] == caption):
        for wc in _wildcard_sets(o["path"], config):
            path = o["path"].format(**wc)
            job = Snakemake(
                InputFiles(),
                OutputFiles([path]),
                Params(),
                Wildcards(fromdict=wc),
                1,
                ResourceList(),
                Log(),
                config,
                o["rule"],
                None,
            )
            found = rst_problems(
                caption.read_text(), str(caption.relative_to(ROOT)), snakemake=job, categories=categories, files=files
            )
            problems += [f"{path}: {p}" for p in found]
            rendered += 1
    assert rendered >= 1
    assert problems == []


# The checker itself: each bad text must be caught, the good one must pass.
_TITLE = "gnode: a title\n"
BAD = {
    "underline too short": (_TITLE + "=" * (len(_TITLE) - 3) + "\n\nText.\n", "Title underline too short"),
    "unknown directive": (".. no-such-directive:: x\n", 'Unknown directive type "no-such-directive"'),
    "unindented list end": ("- an item\nnot a new paragraph\n", "Bullet list ends without a blank line"),
    "unknown link": ("See `nowhere`_.\n", 'Unknown target name: "nowhere"'),
    # right in the file, too short once Jinja2 has put in the configuration's value
    "underline too short once rendered": (
        "{{ snakemake.config['title'] }}\n" + "=" * len("{{ snakemake.config['title'] }}") + "\n",
        "Title underline too short",
    ),
    "undefined variable": ("{{ snakemake.config['nope'] }}\n", "UndefinedError"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_check_catches_bad_rst(name):
    text, expected = BAD[name]
    job = SimpleNamespace(config={"title": "x" * 60})
    problems = rst_problems(text, "<bad>", snakemake=job, categories={}, files=[])
    assert any(expected in p for p in problems), problems


def test_the_check_passes_good_rst():
    text = (
        "{{ snakemake.config['title'] }}\n" + "=" * 60 + "\n\nA caption with ``code``, a link to the "
        "Workflow_ panel, *emphasis* and a list:\n\n- one\n- two\n\n.. embeddedfigure:: data:image/png;base64,AA==\n"
    )
    job = SimpleNamespace(config={"title": "x" * 60})
    assert rst_problems(text, "<good>", snakemake=job, categories={}, files=[]) == []
    # the template that fails above with a long title is right with a short one
    short = SimpleNamespace(config={"title": "short"})
    once_rendered = BAD["underline too short once rendered"][0]
    assert rst_problems(once_rendered, "<good>", snakemake=short, categories={}, files=[]) == []
