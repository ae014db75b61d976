"""Every command in the shell code blocks of README.md and of the how-to pages in docs/ is
checked, so an example cannot go stale (docs/benchmarks.md is a record: its commands keep the
commit or date they were measured at, which :func:`test_every_benchmark_record_is_dated` asks
for).

The commands are read from the pages themselves (a new example is picked up by itself):

* ``segohem-train|eval|predict|export`` (also ``python -m segohem.cli.<cmd>``, and what
  ``sbatch scripts/slurm_train.sh`` / ``torchrun -m segohem.cli.train`` run): the command's
  config is composed with exactly those overrides (Hydra's compose API; paths such as
  ``/data/...`` left as they are, nothing is run), and every override must name an existing
  key or config group option; ``--help`` must answer;
* ``python scripts/<name>.py``: ``--help`` must work, and the Hydra overrides it passes on are
  composed as above;
* ``segohem-heldout`` (an argparse command): ``--help`` must work and name every option used;
* ``python -m pytest ...``: its options must collect this file;
* pure shell and other programs' commands are skipped, each with its reason (:data:`SKIPPED`);
  any other command fails until this file learns how to check it.

``<name>`` placeholders (``outputs/train/<run>/...``) stand for a value the reader fills in.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import OmegaConf

from segohem.config.checks import check_config
from segohem.config.compose import compose_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
HOW_TO_PAGES = ("training", "datasets", "losses", "sweeps", "inference", "development")
"""docs/<name>.md pages whose shell commands are checked like the README's."""
RECORDS = ("benchmarks",)
"""docs/<name>.md pages of measurements: each record keeps the commit or date it was measured
at instead of being re-run."""
PAGES = (README, *(DOCS / f"{name}.md" for name in HOW_TO_PAGES))
SHELL_BLOCKS = ("bash", "sh", "shell", "console")
APPS = ("train", "eval", "predict", "export")
ARGPARSE_APPS = ("heldout",)
"""Console commands with an argparse command line (``segohem/cli/<name>.py``)."""

SKIPPED: dict[tuple[str, ...], str] = {
    ("python", "-m", "venv"): "pure shell: creates a virtual environment",
    (".",): "pure shell: activates the virtual environment",
    ("source",): "pure shell: activates the virtual environment",
    ("cd",): "pure shell: changes the directory",
    ("pip", "install"): "pure shell: installs packages",
    ("tensorboard",): "TensorBoard's own command line, not segohem's",
    ("optuna-dashboard",): "optuna-dashboard's own command line (tests/sweep read the journal)",
    ("ruff",): "the linter's own command line (CI runs it)",
}
"""Command prefixes the test does not check, with the reason."""

XFAIL: dict[str, str] = {}
"""Commands (their test ids, ``<page>: <command>``) expected to fail for now, with the reason
(e.g. a sweep example whose configs are still being changed: "issue 12 in progress")."""

TRAIN_SCRIPTS = {"scripts/slurm_train.sh"}
"""Scripts whose arguments are ``segohem-train`` overrides (they run ``python -m
segohem.cli.train ... "$@"``)."""

_ABSENT = object()


# ----------------------------------------------------------------- reading the README


def shell_commands(markdown: str) -> list[list[str]]:
    """The commands of the shell code blocks (each once), as the shell splits them into
    arguments: continuation lines joined, comments dropped, ``a && b`` split, ``<name>`` ->
    ``name``."""
    commands = []
    for language, body in re.findall(r"^```(\w*)\n(.*?)^```", markdown, re.M | re.S):
        if language not in SHELL_BLOCKS:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = [re.sub(r"<([\w-]+)>", r"\1", w) for w in shlex.split(line, comments=True)]
            while words:
                end = words.index("&&") if "&&" in words else len(words)
                if words[:end] not in commands:
                    commands.append(words[:end])
                words = words[end + 1:]
    return commands


def page_commands() -> list[tuple[str, list[str]]]:
    """``(page, command)`` for every command of :data:`PAGES`, each command once (at its
    first page)."""
    seen: list[list[str]] = []
    found = []
    for page in PAGES:
        for words in shell_commands(page.read_text()):
            if words not in seen:
                seen.append(words)
                found.append((page.stem, words))
    return found


COMMANDS = page_commands()


# ----------------------------------------------------------------- checking one command


def check_command(words: Sequence[str]) -> None:
    """Check one README command (see the module docstring); raises on a bad one."""
    words = list(words)
    for prefix, reason in SKIPPED.items():
        if tuple(words[:len(prefix)]) == prefix:
            pytest.skip(reason)
    words = unwrap_launcher(words)
    program = words[0]
    if program.startswith("segohem-") and program[len("segohem-"):] in APPS:
        check_app(program[len("segohem-"):], words[1:])
    elif program.startswith("segohem-") and program[len("segohem-"):] in ARGPARSE_APPS:
        check_argparse_app(program[len("segohem-"):], words[1:])
    elif words[:3] == ["python", "-m", "pytest"]:
        check_pytest(words[3:])
    elif program == "python" and len(words) > 1 and words[1].startswith("scripts/"):
        check_script(words[1], words[2:])
    else:
        raise AssertionError(f"README command {shlex.join(words)!r} is not checked: teach "
                             f"tests/test_readme_commands.py how, or list it in SKIPPED")


def unwrap_launcher(words: list[str]) -> list[str]:
    """The segohem command that ``sbatch <script>``, ``torchrun -m <module>`` or ``python -m
    segohem.<cmd>`` runs, with its arguments (other commands unchanged)."""
    if words[0] == "sbatch":
        script = next(w for w in words[1:] if not w.startswith("-"))
        assert script in TRAIN_SCRIPTS, f"sbatch {script}: unknown batch script"
        text = (ROOT / script).read_text()
        assert "python -m segohem.cli.train" in text and '"$@"' in text, script
        return ["segohem-train", *words[words.index(script) + 1:]]
    if words[0] == "torchrun":
        words = ["python", *words[words.index("-m"):]]
    if words[:2] == ["python", "-m"] and words[2].startswith("segohem.cli."):
        return [f"segohem-{words[2].removeprefix('segohem.cli.')}", *words[3:]]
    return words


def check_app(name: str, args: list[str]) -> None:
    """``segohem-<name> args``: ``--help`` answers; otherwise the config composes with the
    overrides and each of them names an existing key or group option."""
    if args == ["--help"]:
        run([sys.executable, "-m", f"segohem.cli.{name}", "--help"])
        return
    multirun, overrides = False, []
    words = iter(args)
    for word in words:
        if word in ("-m", "--multirun"):
            multirun = True
        elif word == "--cfg":
            assert next(words) in ("job", "hydra", "all"), "--cfg job|hydra|all"
        elif word.startswith("-"):
            raise AssertionError(f"segohem-{name} {word}: a flag the test does not know")
        else:
            overrides.append(word)
    compose_checked(name, overrides, multirun)


def check_argparse_app(name: str, args: list[str]) -> None:
    """``segohem-<name> args`` of an argparse command: ``--help`` answers and names every
    option in ``args``."""
    done = run([sys.executable, "-m", f"segohem.cli.{name}", "--help"])
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert re.search(rf"(^|\s){re.escape(option)}\b", done.stdout), (
            f"segohem-{name} {option}: not an option of `segohem-{name} --help`")


def compose_checked(name: str, overrides: list[str], multirun: bool = False) -> None:
    """Compose ``conf/<name>.yaml`` with ``overrides`` (a sweep once per value) and check that
    every override names an existing key or group option (no ``+`` / ``~``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    for override in parsed:
        assert not (override.is_add() or override.is_force_add() or override.is_delete()), (
            f"{override.input_line}: README examples override existing keys only")
    for variant in sweep_variants(parsed):
        cfg = compose_config(name, [line for line, _ in variant], hydra=True)
        choices = cfg.hydra.runtime.choices
        for line, override in variant:
            key = override.get_key_element()
            if key in choices:
                assert choices[key] == override.get_value_element_as_str(), line
            else:
                assert OmegaConf.select(cfg, key, default=_ABSENT,
                                        throw_on_resolution_failure=False) is not _ABSENT, (
                    f"{line}: no key {key!r} in the composed {name} config")
        sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
        assert not sweeps or multirun or cfg.hydra.mode == "MULTIRUN", (
            f"{sweeps}: sweep values need -m (multirun)")
        if name == "train":
            check_config(cfg)  # segohem's cross-field checks (e.g. class names vs classes)


def sweep_variants(parsed: list[Override]) -> list[list[tuple[str, Override]]]:
    """The override lists to compose: every sweep at its first value, then each further
    value of each sweep once (the others at their first)."""
    def pick(override: Override, value: str) -> tuple[str, Override]:
        line = f"{override.get_key_element()}={value}"
        return line, OverridesParser.create().parse_override(line)

    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [] for o in parsed]
    base = [pick(o, v[0]) if v else (o.input_line, o) for o, v in zip(parsed, values, strict=True)]
    variants = [base]
    for i, (override, options) in enumerate(zip(parsed, values, strict=True)):
        variants += [[*base[:i], pick(override, value), *base[i + 1:]] for value in options[1:]]
    return variants


def check_script(script: str, args: list[str]) -> None:
    """``python scripts/<name>.py args``: ``--help`` works; the train overrides it passes on
    compose (see :func:`compose_checked`)."""
    assert (ROOT / script).is_file(), f"{script} does not exist"
    run([sys.executable, str(ROOT / script), "--help"])
    if script == "scripts/compare_losses.py" and "--runs" in args:  # reads a run log: run it
        run([sys.executable, str(ROOT / script), *args])
    elif script == "scripts/compare_losses.py":  # the multirun it starts, built by the script
        # Lazy: pandas and torch, which `python -m pytest --collect-only` (above) need not load.
        from segohem.report.loss_comparison import parse_args, train_command

        options, overrides = parse_args(args)
        command = train_command(options, overrides, Path("multirun/compare_losses"))
        check_command(["python", *command[1:]])
    elif script == "scripts/browse_dataset.py":
        compose_checked("train", [a for a in args if "=" in a and not a.startswith("-")])


def check_pytest(args: list[str]) -> None:
    """``python -m pytest args``: the options are valid and select tests (of this file)."""
    run([sys.executable, "-m", "pytest", *args, "--collect-only", "-p", "no:cacheprovider",
         str(Path(__file__).relative_to(ROOT))])


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"{shlex.join(command)}: exit {done.returncode}\n" \
                                 f"{done.stdout[-1500:]}{done.stderr[-1500:]}"
    return done


# ----------------------------------------------------------------- the tests


def command_params():
    for page, words in COMMANDS:
        name = f"{page}: {shlex.join(words)}"[:90]
        marks = [pytest.mark.xfail(reason=XFAIL[name])] if name in XFAIL else []
        yield pytest.param(words, id=name, marks=marks)


@pytest.mark.parametrize("words", list(command_params()))
def test_readme_command(words):
    check_command(words)


def test_the_pages_have_commands_of_every_kind():
    programs = {page: {unwrap_launcher(w)[0] for p, w in COMMANDS if p == page}
                for page in [README.stem, *HOW_TO_PAGES]}
    assert {f"segohem-{app}" for app in APPS} <= programs[README.stem]  # the next commands
    assert {f"segohem-{app}" for app in APPS} <= programs["inference"] | programs["training"]
    assert any(w[:2] == ["python", "scripts/compare_losses.py"] for _, w in COMMANDS)
    assert all(programs.values()), f"a how-to page without a command: {programs}"


def test_every_docs_page_is_checked_or_a_record():
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert pages == set(HOW_TO_PAGES) | set(RECORDS), (
        f"docs/ pages {sorted(pages - set(HOW_TO_PAGES) - set(RECORDS))} are in neither "
        f"HOW_TO_PAGES (commands checked) nor RECORDS; missing: "
        f"{sorted(set(HOW_TO_PAGES) | set(RECORDS) - pages)}")


def test_the_readme_starts_in_one_screen():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail to docs/"
    first = "\n".join(lines[:30])
    quick_start = shell_commands(first)
    assert quick_start[-1] == ["python", "-m", "pytest", "-q"]
    assert quick_start[-2] == ["segohem-train"]  # after the venv and the install
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()  # CI runs the same
    assert re.search(r"mIoU [\d.]+ %", first) and re.search(r"\d+\u2013\d+ s on ", first), (
        "the quick start says what it reaches and how long it takes on which machine")
    picture = re.search(r"!\[[^]]*\]\((docs/images/[^)]+\.png)\)", first)
    assert picture, "one picture (docs/images/*.png) in the first 30 lines"
    size = (ROOT / picture[1]).stat().st_size
    assert 0 < size < 300_000, f"{picture[1]}: {size} bytes"
    for page in HOW_TO_PAGES + RECORDS:
        assert f"(docs/{page}.md)" in README.read_text(), f"README does not link docs/{page}.md"


@pytest.mark.parametrize("page", [*PAGES, *(DOCS / f"{name}.md" for name in RECORDS)],
                         ids=lambda p: p.name)
def test_relative_links_resolve(page):
    targets = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    local = [t for t in targets if not re.match(r"\w+:", t)]
    for target in local:
        path, _, anchor = target.partition("#")
        file = page.parent / path if path else page
        assert file.exists(), f"{page.name}: link to a missing file {target!r}"
        if anchor:
            assert anchor in anchors(file.read_text()), f"{page.name}: no heading #{anchor}"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces -> ``-``."""
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", markdown, re.M)}


def test_every_benchmark_record_is_dated():
    """Each section of docs/benchmarks.md says when (YYYY-MM-DD) or at which commit its
    numbers were measured, or that it has none yet."""
    for name in RECORDS:
        text = (DOCS / f"{name}.md").read_text()
        sections = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
        for heading, body in zip(sections[1::2], sections[2::2], strict=True):
            dated = re.search(r"(?<!\d)20\d\d-\d\d-\d\d(?!\d)|\b(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
                              heading + body)
            assert dated or "not measured yet" in body.lower(), (
                f"docs/{name}.md {heading!r}: no date or commit for its numbers")


def test_extraction_joins_lines_drops_comments_splits_chains():
    markdown = ("```bash\n"
                "pip install -e . && segohem-train loss=ohem   # a comment\n"
                "segohem-eval ckpt_path=outputs/train/<run>/best.ckpt \\\n"
                "    'dataset.value_map={0: 0, 255: 1}'\n"
                "```\n"
                "```python\nsegohem-train loss=ce\n```\n")
    assert shell_commands(markdown) == [
        ["pip", "install", "-e", "."], ["segohem-train", "loss=ohem"],
        ["segohem-eval", "ckpt_path=outputs/train/run/best.ckpt",
         "dataset.value_map={0: 0, 255: 1}"]]


@pytest.mark.parametrize("command", [
    "segohem-train loss=ohm",                          # unknown group option
    "segohem-train loss.thres=0.6",                    # unknown key
    "segohem-train transforms@dataset.train_transform=flip",
    "segohem-eval ckpt_path=x.ckpt eval.strid=[1,1]",
    "segohem-train +loss.foo=1",                       # adds a key
    "segohem-train loss.thresh=0.5,0.6",               # a sweep without -m
    "segohem-train dataset=folder dataset.root=/data/x dataset.num_classes=2 "
    "dataset.class_names=[a,b,c]",                     # segohem's own config check
    "python -m segohem.cli.train --cfg job hydra/launcher=slurm",
    "python scripts/compare_losses.py --losses ce,ohm",
    "python scripts/no_such_script.py",
    "segohem-heldout --out /tmp/heldout --colour red",  # not an option of the command
    "make train",                                      # a program the test does not know
])
def test_a_bad_example_fails(command):
    with pytest.raises((AssertionError, HydraException, ValueError)):
        check_command(shlex.split(command))
