"""Measuring candidates on the device and remembering the fastest.

``timing`` is the one timing loop (bench, tune, and the packager's host latency use it);
``bench`` times the selected candidate; ``tune`` times every candidate and writes the choice;
``tuned`` finds that choice again for ``load()`` (cheap: nothing of the device is read unless a
tuned file exists); ``fingerprint`` says which device a choice belongs to.
"""
