"""The coverage zoo: 40-odd architectures made in code, each built by edgepack for the shipped
targets, and a scoreboard of what came out (``make zoo``; zoo/run.py)."""
