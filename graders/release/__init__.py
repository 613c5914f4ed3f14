"""What leaves the instructor's hands: a student kit (kit.py) and a Gradescope autograder (gradescope.py).

A kit holds the template, the public checks and the engine to run them; each module a
grader declares INSTRUCTOR_ONLY is replaced by a stand-in that replays its answers for
the public seeds (recorder.py records them, replay.py replays them, codec.py keys and
stores them).
"""
