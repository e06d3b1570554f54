#!/usr/bin/env python3
"""Regenerates Sources/FerryStore/Seed.swift from hub/seed/ (run from the repo root)."""
import os
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seed = os.path.join(root, "hub", "seed")
def read(n):
    return open(os.path.join(seed, n), encoding="utf-8").read()
def lit(s):
    # Swift drops the newline just before the closing delimiter: add one so
    # the literal holds the file byte for byte.
    body = '#"""\n' + s + "\n" + '"""#'
    return body.replace("\n", "\n    ")
out = [
    "// Generated from hub/seed/ by scripts/gen-seed.py (not formatted); SeedTests checks it matches. Do not edit.",
    "",
    "/// Seed data shipped with Ferry: the province's communes, the land-record form and its campaign.",
    "public enum Seed {",
    "    /// hub/seed/lam-dong-communes.csv",
    "    public static let communesCSV = " + lit(read("lam-dong-communes.csv")),
    "",
    "    /// hub/seed/land-record.form.json",
    "    public static let landRecordForm = " + lit(read("land-record.form.json")),
    "",
    "    /// hub/seed/land-2025.campaign.json",
    "    public static let landCampaign = " + lit(read("land-2025.campaign.json")),
    "}",
    "",
]
open(os.path.join(root, "Sources", "FerryStore", "Seed.swift"), "w", encoding="utf-8").write("\n".join(out))
