"""torch_wm_backend: ``torch.compile(model, backend="tvm_wm")`` through Apache TVM, tuned by a
world-model cost model."""
from .errors import OptionError, TvmWmError, UnsupportedOpsError
from .settings import Settings
from .counters import reset_stats, stats
from .explanation import explain, tune_ahead
from . import logs as _logs

_logs.configure()  # TVM_WM_LOG

__version__ = "0.1.0"

__all__ = ["OptionError", "Settings", "TvmWmError", "UnsupportedOpsError", "explain", "reset_stats", "stats",
           "tune_ahead", "__version__"]
