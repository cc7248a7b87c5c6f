"""The stage layer: one module per rules file, one function per rule.

``rules/<name>.smk`` runs ``scripts/<rule>.py``, which calls ``sealflow.stages.<name>.<stage>``
with keyword arguments only. A stage reads its input files, calls the domain library
and writes its outputs atomically with provenance; it holds no logic of its own.
"""
