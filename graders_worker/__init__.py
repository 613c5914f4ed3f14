"""The untrusted side of the boundary: code that runs inside the worker, next to student code.

Only this package is mounted into the sandbox (graders.sandbox); nothing here may import
the grader-side package `graders`, and nothing the grader reads from here is trusted:
the worker loop (`main`), the wire format (`protocol`), each assignment's adapter
(`adapters.NAME`) and the worker side of served environments (`rl`).
"""
