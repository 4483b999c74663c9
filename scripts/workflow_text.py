#!/usr/bin/env python3
"""Prints the prompts of a workflow split as plain text (blank line between
stages): the calibration text (train split) and the held-out text for
`agentcompress kld` (dev split) that the README's quality table uses.
Usage: scripts/workflow_text.py bench/workflows/train.jsonl > calib.txt"""
import json
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    prompts = [json.loads(line)["prompt"] for line in f if line.strip()]
sys.stdout.write("\n\n".join(p.replace("{prev}", "") for p in prompts) + "\n")
