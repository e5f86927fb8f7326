"""`import hackrisk` stays light: no torch, pymc or matplotlib."""

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, hackrisk, hackrisk.cube, hackrisk.io, hackrisk.simulate\n"
        "heavy = [m for m in ('torch', 'pymc', 'matplotlib', 'transformers', 'ipywidgets') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import hackrisk pulled in {out.stdout.strip()}"
