"""Where the examples find gearmand: $GEARMAN_SERVERS (comma-separated) or localhost."""
from __future__ import annotations

import os
from typing import List


def hosts() -> List[str]:
    return [h.strip() for h in os.environ.get("GEARMAN_SERVERS", "localhost:4730").split(",")
            if h.strip()]
