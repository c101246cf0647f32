"""Write a seeded CSV of short texts in three languages (English, German, Finnish) for
`lstm-edge pipeline --task classify --csv FILE` (a text column and a label column).

Each text is 2 to 8 words drawn from the language's list, with words shared by all three
(names, numbers, loan words) mixed in, so a text is not always decided by its first word.
Usage: python scripts/make_text_classes.py OUT.csv [--rows N] [--seed S]
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

WORDS = {
    "en": "the and house water green small light tree where is my train today very good "
    "thank you please open window",
    "de": "und der haus wasser grün klein licht baum wo ist mein zug heute sehr gut danke "
    "bitte offen fenster",
    "fi": "ja talo vesi vihreä pieni valo puu missä on minun juna tänään hyvin hyvä kiitos "
    "ole hyvä auki ikkuna",
}
SHARED = ["ok", "taxi", "hotel", "pizza", "anna", "berlin", "2024", "7", "radio", "internet"]
SHARE = (0.5, 0.3, 0.2)  # imbalanced classes


def rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lang = list(WORDS)[int(rng.choice(3, p=SHARE))]
        own = WORDS[lang].split()
        words = [
            str(rng.choice(SHARED)) if rng.random() < 0.25 else str(rng.choice(own))
            for _ in range(int(rng.integers(2, 9)))
        ]
        out.append((" ".join(words), lang))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows(args.rows, args.seed))


if __name__ == "__main__":
    main()
