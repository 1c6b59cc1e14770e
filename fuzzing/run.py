"""``python -m fuzzing.run TARGET [libFuzzer flags] [CORPUS_DIR ...]``: one atheris harness.

The modules a target is about (:data:`fuzzing.targets.COMPONENTS`) are imported under
atheris's coverage instrumentation; the target functions are in :mod:`fuzzing.targets`. Any
exception a target lets out is a crash: atheris prints it, writes the input to
``crash-<sha1>`` (or under ``-artifact_prefix=``) and exits non-zero. Turn each crash into a
regression test (the committed ones live in tests/fuzzing/) and fix it.

Without a corpus directory the committed seeds of ``fuzzing/corpus/TARGET`` are used. libFuzzer
writes new inputs into the *first* corpus directory it is given, so give a scratch directory
first to keep the committed seeds as they are::

    python -m fuzzing.run sdp -max_total_time=600 /tmp/sdp-corpus fuzzing/corpus/sdp

``python -m fuzzing.run --list`` names the targets.
"""

from __future__ import annotations

import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    if argv[1] == "--list":
        from fuzzing.targets import TARGETS

        print("\n".join(TARGETS))
        return 0
    import atheris

    from fuzzing import targets

    name = argv[1]
    target = targets.TARGETS.get(name)
    if target is None:
        print(f"unknown target {name!r}; targets: {', '.join(targets.TARGETS)}",
              file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=list(targets.COMPONENTS[name])):
        targets.load_components(name)
    rest = argv[2:]
    if not any(not arg.startswith("-") for arg in rest):
        rest.append(str(CORPUS / name))
    atheris.Setup([argv[0], *rest], target)
    atheris.Fuzz()
    return 0  # not reached: libFuzzer exits the process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
