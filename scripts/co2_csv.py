"""Write the weekly Mauna Loa CO2 series (1958-03-29 .. 2001-12-29, 2,284 rows) as a CSV
the forecast task reads: `time` (ISO date) and `co2` (ppm).

The data ships with statsmodels (`statsmodels.datasets.co2`, from the Scripps CO2 program);
its 59 missing weeks are filled by linear interpolation in time. statsmodels is needed by
this script only (`pip install statsmodels`), never by lstm-edge or its tests.

    python3 scripts/co2_csv.py runs/co2.csv
    lstm-edge pipeline --task forecast --csv runs/co2.csv --target co2 --time-column time \
        --out runs/co2
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out: str) -> None:
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data.interpolate(method="time")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["time,co2"] + [
        f"{stamp.date().isoformat()},{value:.6f}" for stamp, value in frame["co2"].items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(frame)} rows to {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 scripts/co2_csv.py OUT.csv")
    main(sys.argv[1])
