"""What the tests and the benchmarks share: the fake upstream and its scenarios, image makers, a server process.

Not part of the console: the wheel's explicit package list leaves it out.
"""
