"""CPU seconds of ``diarize_file`` per recording (best of two runs after a warm-up).

Times whatever ``pipeline`` package is importable, so the same command compares two trees::

    PYTHONPATH=/path/to/other/tree python scripts/time_diarize.py FILE...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipeline.speech.diarize import diarize_file, load_speaker_model


def main() -> None:
    model = load_speaker_model()
    for name in sys.argv[1:]:
        path = Path(name)
        diarize_file(model, path)  # warm-up
        best, result = float("inf"), None
        for _ in range(2):
            started = time.process_time()
            result = diarize_file(model, path)
            best = min(best, time.process_time() - started)
        assert result is not None
        print(f"{path.name}: {best:.3f} s CPU, {result.n_windows} windows, {len(result.speakers)} speakers",
              flush=True)


if __name__ == "__main__":
    main()
