"""The parts of ``benchmarks/gpu_suite.py``: one module per area, each part a function of a :class:`~suite.part.Part`.

A part runs in a process of its own with a time budget (see ``gpu_suite.py``); it writes every
measurement as soon as it has it, so that a part stopped at its budget still leaves what it measured.
"""
