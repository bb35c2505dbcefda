"""The yardstick for the check-in page: a bare Flask app whose one page renders a Jinja template
(bench/bare_page.html: a form of questions with checkbox options) to the same number of bytes as the
real check-in page. No database, session, CSRF, security headers or compression.

    BARE_PAGE_BYTES=11832 gunicorn --workers 2 bench.bare_app:app

The number of questions and a filler paragraph are chosen once at start-up so the page comes out at
exactly BARE_PAGE_BYTES; every request renders the template again, as the real page does.
"""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, render_template

app = Flask(__name__, template_folder=str(Path(__file__).resolve().parent))

OPTIONS = [("none", "None of these"), ("chest_pain", "Chest pain or tightness"),
           ("short_of_breath", "New shortness of breath"), ("coughing_blood", "Coughing up blood")]


def _questions(n: int) -> list[dict]:
    return [{"id": f"q{i}", "text": f"Question {i}: have you had any of these since your last check-in?",
             "options": OPTIONS} for i in range(n)]


def _context(n: int, filler: str) -> dict:
    return {"title": "First, some important questions", "position": 1, "total": 8,
            "intro": "If you tick any of these, we will tell you what to do straight away.",
            "token": "x" * 91, "questions": _questions(n), "filler": filler}


def _size(n: int, filler: str) -> int:
    return len(render_template("bare_page.html", **_context(n, filler)).encode())


def _fit(target: int) -> tuple[int, str]:
    """Questions and filler that make the page exactly `target` bytes."""
    with app.app_context():
        base = _size(0, "")
        if target < base:
            raise SystemExit(f"BARE_PAGE_BYTES={target} is smaller than the empty page ({base} bytes)")
        per_question = _size(1, "") - base
        n = (target - base) // per_question
        filler = "." * (target - _size(n, ""))
        if _size(n, filler) != target:
            raise SystemExit(f"could not fit the bare page to {target} bytes")
        return n, filler


TARGET = int(os.environ.get("BARE_PAGE_BYTES", "10000"))
QUESTION_COUNT, FILLER = _fit(TARGET)


@app.get("/")
def page():
    return render_template("bare_page.html", **_context(QUESTION_COUNT, FILLER))
