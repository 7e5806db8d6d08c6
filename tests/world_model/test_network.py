import subprocess
import sys
from pathlib import Path

NETWORK = Path(__file__).parents[2] / "torch_wm_backend" / "world_model" / "network.py"


def test_network_module_imports_no_tvm():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('wm_network', {str(NETWORK)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['wm_network'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "mod.WorldModel(mod.WMConfig())\n"
        "bad = [m for m in sys.modules if m == 'tvm' or m.startswith('tvm.')]\n"
        "assert not bad, bad[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
