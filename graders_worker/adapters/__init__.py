"""One module per assignment (adapters/NAME.py): worker-side glue the grader calls by name.

`worker.call("train", ...)` runs `adapters.NAME.train(submission_module, ...)` when the
adapter defines it, else the submission's own top-level `train(...)`. Adapters build
the grader's networks from the weights it sent, run the student's functions on them,
and return plain data; the grader checks every number that comes back.
"""
