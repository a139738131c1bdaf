"""Principle 7 for the command line: building every command's parser (what ``reid --help``
and ``reid plugins`` do before anything runs) imports no torch, numba or numpy; the
commands import them when they run."""

import subprocess
import sys


def test_reid_help_and_reid_plugins_import_nothing_heavy():
    code = (
        "import sys\n"
        "from reidcore.cli import main\n"
        "for argv in (['--help'], ['eval', '--help'], ['extract', '--help'],"
        " ['data', 'synth', '--help'], ['plugins']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'timm', 'numba', 'numpy')"
        " if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: reid" in result.stdout  # the help was printed: the parsers were built
    assert result.stderr.strip().splitlines()[-1] == "HEAVY=", result.stderr
