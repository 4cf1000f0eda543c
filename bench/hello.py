"""The yardstick: the smallest Flask app, served by bench/harness.py under the same
gunicorn settings as Cohort, so that each benchmark prints what this machine and server
can do at most beside what Cohort does."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
