"""The project's environment, as scripts/env.sh builds it: what makes
each chapter's Jupyter kernel start and stop quickly."""

import subprocess
import sys


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_jupyter_runner_does_not_build_a_grammar_at_import():
    # Quarto runs each chapter through nbclient in a fresh process;
    # jsonschema imports rfc3987-syntax when it is installed, and that
    # builds a Lark grammar (about 1.1 s) every time. env.sh removes it.
    loaded = python("import nbclient, nbformat, sys; "
                    "print(sorted(m for m in ('lark', 'rfc3987_syntax') "
                    "if m in sys.modules))")
    assert loaded == "[]", (
        f"importing nbclient loaded {loaded}: run `pip uninstall "
        "rfc3987-syntax` (scripts/env.sh does it when it builds .venv)")


def test_setup_freezes_the_objects_imported_before_it():
    frozen = python("import gc, aecore as ae; before = gc.get_freeze_count()"
                    "; ae.setup(); print(before, gc.get_freeze_count())")
    before, after = map(int, frozen.split())
    assert before == 0
    assert after > 10_000   # torch's and matplotlib's module objects
