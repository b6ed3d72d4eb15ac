"""`python -m runner.compare`: a sweep's runs (or any runs) side by side, best first."""

from __future__ import annotations

from runner.track.compare import main

if __name__ == "__main__":
    main()
