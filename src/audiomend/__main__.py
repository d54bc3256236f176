from audiomend.cli import run

run()
