"""``realsr demo``: the whole pipeline on built-in data, with a report.

The demo renders its own data (the procedural photos of :mod:`realsr.synthetic`; nothing is
downloaded), runs every stage through the real ``realsr`` commands and writes ``OUT/report.html``
and ``OUT/report.png``. Modules: :mod:`.plan` (sizes of the quick and full demo), :mod:`.data`
(built-in images), :mod:`.steps` (the command line of every step), :mod:`.figures` (figures
measured against the known truth), :mod:`.runner` (runs the steps, resumes, times them),
:mod:`.report` (the HTML page and the summary picture), :mod:`.pictures` (Pillow helpers).

The package never imports :mod:`realsr.cli`: the runner is handed a function that executes one
``realsr`` command line (``cli/demo.py`` passes the click group's own entry point). Nothing is
imported eagerly, so ``python -m realsr.demo.data`` / ``python -m realsr.demo.report`` run cleanly.
"""
