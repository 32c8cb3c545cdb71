"""Update policies: the loop that acts on what monitoring finds.

A policy (:mod:`~vigil.policy.config`, stored by :mod:`~vigil.policy.store`) says when a
model is retrained and how the candidate is judged and rolled out; each run
(:mod:`~vigil.policy.runs`) is a state machine in SQL advanced by
:mod:`~vigil.policy.engine`, from the server's loop (:mod:`~vigil.policy.scheduler`) or
``vigil policy run --wait``.
"""
